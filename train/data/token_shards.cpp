#include "aria/train/data/token_shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "aria/core/error.h"
#include "aria/core/file_io.h"
#include "aria/model/tokenizer.h"

namespace aria {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull, kFnvPrime = 1099511628211ull;

template <typename T>
void put(std::string& s, size_t at, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) s[at + i] = char((uint64_t(v) >> (8 * i)) & 0xff);
}

template <typename T>
T get(const unsigned char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(p[i]) << (8 * i);
  return T(v);
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

uint64_t shard_checksum(const uint16_t* ids, size_t n) {
  uint64_t h = kFnvOffset;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint64_t w = uint64_t(ids[i]) | uint64_t(ids[i + 1]) << 16 | uint64_t(ids[i + 2]) << 32 |
                       uint64_t(ids[i + 3]) << 48;
    h = (h ^ w) * kFnvPrime;
  }
  if (i < n) {
    uint64_t w = 0;
    for (size_t k = 0; i + k < n; ++k) w |= uint64_t(ids[i + k]) << (16 * k);
    h = (h ^ w) * kFnvPrime;
  }
  return h;
}

void write_token_shard(const std::string& path, const uint16_t* ids, size_t n, uint32_t vocab_size) {
  ARIA_CHECK(vocab_size >= 1 && vocab_size <= 65536, "token shard '", path, "': vocabulary size ", vocab_size,
             " does not fit uint16 token ids (1..65536)");
  for (size_t i = 0; i < n; ++i)
    ARIA_CHECK(ids[i] < vocab_size, "token shard '", path, "': token id ", ids[i], " at position ", i,
               " is outside the vocabulary of ", vocab_size);
  std::string buf(kShardHeaderBytes + 2 * n, '\0');
  std::memcpy(buf.data(), kShardMagic, 8);
  put<uint32_t>(buf, 8, kShardVersion);
  put<uint32_t>(buf, 12, vocab_size);
  put<uint64_t>(buf, 16, uint64_t(n));
  put<uint64_t>(buf, 24, shard_checksum(ids, n));
  for (size_t i = 0; i < n; ++i) put<uint16_t>(buf, kShardHeaderBytes + 2 * i, ids[i]);
  io::write_file_atomic(path, buf);
}

void write_token_shard(const std::string& path, const std::vector<int32_t>& ids, uint32_t vocab_size) {
  std::vector<uint16_t> v(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    ARIA_CHECK(ids[i] >= 0 && uint32_t(ids[i]) < vocab_size && ids[i] < 65536, "token shard '", path,
               "': token id ", ids[i], " at position ", i, " is outside the vocabulary of ", vocab_size);
    v[i] = uint16_t(ids[i]);
  }
  write_token_shard(path, v.data(), v.size(), vocab_size);
}

std::shared_ptr<TokenShard> TokenShard::open(const std::string& path, uint32_t expected_vocab) {
  static_assert(std::endian::native == std::endian::little, "token shards are mapped as little-endian");
  std::shared_ptr<TokenShard> s(new TokenShard());
  s->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  ARIA_CHECK(fd >= 0, "token shard '", path, "': cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ARIA_FAIL("token shard '", path, "': not a regular file");
  }
  const size_t bytes = size_t(st.st_size);
  if (bytes < kShardHeaderBytes) {
    ::close(fd);
    ARIA_FAIL("token shard '", path, "' is truncated: ", bytes, " bytes, shorter than the ", kShardHeaderBytes,
              "-byte header");
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ARIA_CHECK(m != MAP_FAILED, "token shard '", path, "': mmap failed: ", std::strerror(errno));
  s->map_ = m;
  s->map_bytes_ = bytes;
  const auto* p = static_cast<const unsigned char*>(m);
  ARIA_CHECK(std::memcmp(p, kShardMagic, 8) == 0, "token shard '", path,
             "' is not a token shard (bad magic; written by `aria tokenize --shards`?)");
  const uint32_t version = get<uint32_t>(p + 8);
  ARIA_CHECK(version == kShardVersion, "token shard '", path, "' has format version ", version,
             "; this aria reads version ", kShardVersion);
  s->vocab_ = get<uint32_t>(p + 12);
  const uint64_t n = get<uint64_t>(p + 16);
  const uint64_t sum = get<uint64_t>(p + 24);
  ARIA_CHECK(s->vocab_ >= 1 && s->vocab_ <= 65536, "token shard '", path, "' has an invalid vocabulary size ",
             s->vocab_);
  ARIA_CHECK(expected_vocab == 0 || s->vocab_ == expected_vocab, "token shard '", path,
             "' was tokenized with a vocabulary of ", s->vocab_, " tokens, but this model/tokenizer has ",
             expected_vocab);
  ARIA_CHECK(n <= (bytes - kShardHeaderBytes) / 2 && bytes == kShardHeaderBytes + 2 * n, "token shard '", path,
             "' is truncated or has trailing bytes: the header says ", n, " tokens (", kShardHeaderBytes + 2 * n,
             " bytes), the file has ", bytes, " bytes");
  ARIA_CHECK(n >= 1, "token shard '", path, "' holds no tokens");
  s->ids_ = reinterpret_cast<const uint16_t*>(p + kShardHeaderBytes);
  s->n_ = size_t(n);
  ARIA_CHECK(shard_checksum(s->ids_, s->n_) == sum, "token shard '", path,
             "' is corrupted: the payload's checksum does not match the header's");
  const uint16_t hi = *std::max_element(s->ids_, s->ids_ + s->n_);
  ARIA_CHECK(hi < s->vocab_, "token shard '", path, "' holds token id ", hi, " outside its vocabulary of ",
             s->vocab_);
  return s;
}

ShardHeader read_shard_header(const std::string& path) {
  std::error_code ec;
  ARIA_CHECK(fs::is_regular_file(path, ec), "token shard '", path, "': not a regular file");
  const uint64_t bytes = fs::file_size(path, ec);
  ARIA_CHECK(!ec && bytes >= kShardHeaderBytes, "token shard '", path, "' is truncated: ", bytes,
             " bytes, shorter than the ", kShardHeaderBytes, "-byte header");
  std::string head(kShardHeaderBytes, '\0');
  std::ifstream f(path, std::ios::binary);
  ARIA_CHECK(f.read(head.data(), std::streamsize(head.size())), "token shard '", path, "': cannot read its header");
  const auto* p = reinterpret_cast<const unsigned char*>(head.data());
  ARIA_CHECK(head.size() == kShardHeaderBytes && std::memcmp(p, kShardMagic, 8) == 0, "token shard '", path,
             "' is not a token shard (bad magic; written by `aria tokenize --shards`?)");
  ARIA_CHECK(get<uint32_t>(p + 8) == kShardVersion, "token shard '", path, "' has format version ",
             get<uint32_t>(p + 8), "; this aria reads version ", kShardVersion);
  ShardHeader h{get<uint32_t>(p + 12), get<uint64_t>(p + 16), get<uint64_t>(p + 24)};
  ARIA_CHECK(h.vocab_size >= 1 && h.vocab_size <= 65536, "token shard '", path,
             "' has an invalid vocabulary size ", h.vocab_size);
  ARIA_CHECK(h.tokens <= (bytes - kShardHeaderBytes) / 2 && bytes == kShardHeaderBytes + 2 * h.tokens,
             "token shard '", path, "' is truncated or has trailing bytes: the header says ", h.tokens, " tokens (",
             kShardHeaderBytes + 2 * h.tokens, " bytes), the file has ", bytes, " bytes");
  return h;
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

std::vector<std::string> list_shards(const std::string& dir, const std::string& split) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  const std::string prefix = split + "_";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > prefix.size() + 4 && name.compare(0, prefix.size(), prefix) == 0 &&
        name.compare(name.size() - 4, 4, ".bin") == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TokenShardSet open_shards(const std::string& dir, const std::string& split, uint32_t expected_vocab) {
  std::error_code ec;
  ARIA_CHECK(fs::is_directory(dir, ec), "shard directory '", dir, "' does not exist (make it with `aria tokenize --shards`)");
  const auto paths = list_shards(dir, split);
  ARIA_CHECK(!paths.empty(), "shard directory '", dir, "' has no ", split, "_*.bin shards");
  TokenShardSet set;
  for (const auto& p : paths) {
    auto s = TokenShard::open(p, expected_vocab);
    ARIA_CHECK(set.shards.empty() || s->vocab_size() == set.vocab_size, "token shard '", p, "' has vocabulary size ",
               s->vocab_size(), " but ", set.shards.front()->path(), " has ", set.vocab_size);
    set.vocab_size = s->vocab_size();
    set.total_tokens += s->size();
    set.shards.push_back(std::move(s));
  }
  return set;
}

std::vector<std::string_view> split_for_tokenizing(std::string_view text, size_t chunk_bytes) {
  std::vector<std::string_view> out;
  chunk_bytes = std::max<size_t>(chunk_bytes, 1);
  size_t start = 0;
  while (start < text.size()) {
    size_t cut = text.size();
    for (size_t i = start + chunk_bytes; i + 1 < text.size(); ++i) {
      if (text[i] == '\n' && !is_space(text[i - 1]) && !is_space(text[i + 1])) {
        cut = i + 1;
        break;
      }
    }
    out.push_back(text.substr(start, cut - start));
    start = cut;
  }
  return out;
}

std::vector<int32_t> tokenize_parallel(const Gpt2Tokenizer& tok, const std::string& text, int threads,
                                       size_t chunk_bytes) {
  const auto pieces = split_for_tokenizing(text, chunk_bytes);
  std::vector<std::vector<int32_t>> ids(pieces.size());
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  auto work = [&] {
    try {
      for (size_t k; !failed && (k = next.fetch_add(1)) < pieces.size();) ids[k] = tok.encode(std::string(pieces[k]));
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(threads, 1); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  size_t total = 0;
  for (const auto& v : ids) total += v.size();
  std::vector<int32_t> out;
  out.reserve(total);
  for (auto& v : ids) out.insert(out.end(), v.begin(), v.end());
  return out;
}

std::vector<std::string> write_split_shards(const std::string& dir, const std::string& split,
                                            const std::vector<int32_t>& ids, uint32_t vocab_size,
                                            size_t tokens_per_shard) {
  ARIA_CHECK(!ids.empty(), "no tokens to write for split '", split, "'");
  ARIA_CHECK(tokens_per_shard >= 1, "tokens per shard must be >= 1");
  fs::create_directories(dir);
  for (const auto& old : list_shards(dir, split)) fs::remove(old);
  std::vector<std::string> paths;
  for (size_t at = 0, k = 0; at < ids.size(); at += tokens_per_shard, ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "%s_%06zu.bin", split.c_str(), k);
    const std::string path = (fs::path(dir) / name).string();
    const size_t n = std::min(tokens_per_shard, ids.size() - at);
    write_token_shard(path, std::vector<int32_t>(ids.begin() + long(at), ids.begin() + long(at + n)), vocab_size);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace aria
