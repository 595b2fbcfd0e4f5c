#include "aria/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "aria/core/file_io.h"

namespace aria {

// The format is little-endian and we copy element bytes straight into tensors.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; a larger one is a corrupt length field
// far more often than a real checkpoint, and honouring it would mean a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

std::string where(const std::string& path) { return "safetensors file '" + path + "': "; }

struct DTypeName {
  DType dtype;
  const char* name;
};
constexpr DTypeName kSupported[] = {{DType::F32, "F32"}, {DType::F64, "F64"}, {DType::F16, "F16"},
                                    {DType::BF16, "BF16"}, {DType::I32, "I32"}, {DType::I64, "I64"}};
// Valid safetensors dtypes that aria has no storage type for: named as "unsupported", not "unknown",
// so the user knows the file is fine and aria is the limit.
constexpr const char* kUnsupported[] = {"BOOL", "U8", "I8", "U16", "I16", "U32", "U64", "F8_E4M3",
                                        "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

// The whole header as JSON, rejecting duplicate keys at any depth: nlohmann keeps the last value of
// a repeated key, which would silently pick one of two tensors with the same name.
json parse_header_json(const char* text, size_t n, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;  // the keys seen so far, per object being parsed
  auto on_event = [&](int depth, json::parse_event_t event, json& value) -> bool {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end: open_objects.pop_back(); break;
      case json::parse_event_t::key: {
        const std::string& key = value.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) {
          if (open_objects.size() == 1) ARIA_FAIL(where(path), "duplicate tensor name '", key, "' in header");
          ARIA_FAIL(where(path), "duplicate key '", key, "' in header");
        }
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    ARIA_FAIL(where(path), "header is not valid JSON (", e.what(), ")");
  }
}

// A shape dimension or offset: a JSON integer >= 0. Floats (even 3.0), negatives, bools are refused.
uint64_t json_uint(const json& v, const std::string& ctx, const char* what) {
  ARIA_CHECK(v.is_number_integer(), ctx, what, " must be an integer, got ", v.dump());
  ARIA_CHECK(v.is_number_unsigned(), ctx, what, " must be non-negative, got ", v.dump());
  return v.get<uint64_t>();
}

SafeTensorEntry parse_entry(const std::string& name, const json& v, uint64_t buffer_size, const std::string& path) {
  const std::string ctx = where(path) + "tensor '" + name + "': ";
  ARIA_CHECK(v.is_object(), ctx, "entry must be a JSON object, got ", v.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"})
    ARIA_CHECK(v.contains(key), ctx, "entry is missing '", key, "'");
  // Extra keys are ignored: they cannot change where the bytes are, which is what we validate.

  SafeTensorEntry e;
  e.name = name;
  const json& dt = v["dtype"];
  ARIA_CHECK(dt.is_string(), ctx, "'dtype' must be a string, got ", dt.dump());
  try {
    e.dtype = safetensors_dtype_from_string(dt.get<std::string>());
  } catch (const Error& err) {
    ARIA_FAIL(ctx, err.what());
  }

  const json& shape = v["shape"];
  ARIA_CHECK(shape.is_array(), ctx, "'shape' must be an array, got ", shape.dump());
  // numel * element size, computed without overflow: a header claiming [2^40, 2^40] must not wrap
  // around to a small number that happens to match the offsets.
  uint64_t bytes = dtype_size(e.dtype);
  bool overflow = false;
  for (const json& d : shape) {
    uint64_t dim = json_uint(d, ctx, "shape dimension");
    ARIA_CHECK(dim <= uint64_t(std::numeric_limits<int64_t>::max()), ctx, "shape dimension ", dim, " is too large");
    e.shape.push_back(int64_t(dim));
    if (__builtin_mul_overflow(bytes, dim, &bytes)) overflow = true;
  }
  if (std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end()) bytes = 0, overflow = false;

  const json& off = v["data_offsets"];
  ARIA_CHECK(off.is_array() && off.size() == 2, ctx, "'data_offsets' must be an array [begin, end], got ", off.dump());
  uint64_t begin = json_uint(off[0], ctx, "data_offsets begin");
  uint64_t end = json_uint(off[1], ctx, "data_offsets end");
  ARIA_CHECK(begin <= end, ctx, "data_offsets begin ", begin, " > end ", end);
  ARIA_CHECK(end <= buffer_size, ctx, "data_offsets end ", end, " lies beyond the data buffer (", buffer_size,
             " bytes; file truncated?)");
  ARIA_CHECK(!overflow && end - begin == bytes, ctx, "header lies about the size: shape ", shape_str(e.shape), " of ",
             safetensors_dtype_string(e.dtype), " needs ", overflow ? std::string("more than 2^64") : std::to_string(bytes),
             " bytes but data_offsets span ", end - begin);
  e.begin = size_t(begin);
  e.end = size_t(end);
  return e;
}

// The data buffer must be tiled exactly by the tensors, as the format requires: an overlap means two
// tensors share bytes, a gap or trailing bytes mean the header does not describe the file.
void check_layout(std::vector<SafeTensorEntry>& entries, uint64_t buffer_size, const std::string& path) {
  std::sort(entries.begin(), entries.end(), [](const SafeTensorEntry& a, const SafeTensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const SafeTensorEntry* prev = nullptr;
  for (const SafeTensorEntry& e : entries) {
    ARIA_CHECK(e.begin >= expected, where(path), "tensor '", e.name, "' [", e.begin, ", ", e.end,
               ") overlaps tensor '", prev ? prev->name : "", "' which ends at ", expected);
    ARIA_CHECK(e.begin == expected, where(path), "gap of ", e.begin - expected, " bytes before tensor '", e.name,
               "' (at ", expected, "); tensors must tile the data buffer");
    expected = e.end;
    prev = &e;
  }
  ARIA_CHECK(expected == buffer_size, where(path), buffer_size - expected,
             " trailing bytes after the last tensor (data buffer is ", buffer_size, " bytes, tensors end at ", expected,
             ")");
}

// ---- element conversion ----
double read_float(const unsigned char* p, DType t) {
  switch (t) {
    case DType::F64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::F16: { uint16_t v; std::memcpy(&v, p, 2); return f16_to_float(v); }
    case DType::BF16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
    default: ARIA_FAIL("internal: read_float on ", dtype_name(t));
  }
}

void write_float(unsigned char* p, DType t, double x) {
  switch (t) {
    case DType::F64: std::memcpy(p, &x, 8); break;
    case DType::F32: { float v = float(x); std::memcpy(p, &v, 4); break; }
    case DType::F16: { uint16_t v = float_to_f16(float(x)); std::memcpy(p, &v, 2); break; }
    case DType::BF16: { uint16_t v = float_to_bf16(float(x)); std::memcpy(p, &v, 2); break; }
    default: ARIA_FAIL("internal: write_float on ", dtype_name(t));
  }
}

// Source bytes may be unaligned (the data buffer need not be 8-aligned in files from other writers),
// so everything goes through memcpy.
void convert(const unsigned char* src, DType from, unsigned char* dst, DType to, size_t n, const std::string& ctx) {
  if (from == to) {
    std::memcpy(dst, src, n * dtype_size(from));
    return;
  }
  const size_t ss = dtype_size(from), ds = dtype_size(to);
  if (is_floating(from) && is_floating(to)) {
    for (size_t i = 0; i < n; ++i) write_float(dst + i * ds, to, read_float(src + i * ss, from));
    return;
  }
  if (from == DType::I32 && to == DType::I64) {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, src + i * 4, 4);
      int64_t w = v;
      std::memcpy(dst + i * 8, &w, 8);
    }
    return;
  }
  if (from == DType::I64 && to == DType::I32) {
    for (size_t i = 0; i < n; ++i) {
      int64_t v;
      std::memcpy(&v, src + i * 8, 8);
      ARIA_CHECK(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(), ctx,
                 "element ", i, " = ", v, " does not fit in int32");
      int32_t w = int32_t(v);
      std::memcpy(dst + i * 4, &w, 4);
    }
    return;
  }
  // Integer <-> float would be a silent reinterpretation of ids as weights (or the reverse).
  ARIA_FAIL(ctx, "cannot convert ", dtype_name(from), " to ", dtype_name(to),
            is_floating(from) ? " (floating tensors load as F32/F64/F16/BF16)" : " (integer tensors load as I32/I64)");
}

}  // namespace

DType safetensors_dtype_from_string(const std::string& s) {
  for (const auto& d : kSupported)
    if (s == d.name) return d.dtype;
  for (const char* u : kUnsupported)
    if (s == u) ARIA_FAIL("unsupported dtype '", s, "' (aria reads F32, F64, F16, BF16, I32, I64)");
  ARIA_FAIL("unknown dtype '", s, "' (aria reads F32, F64, F16, BF16, I32, I64)");
}

const char* safetensors_dtype_string(DType t) {
  for (const auto& d : kSupported)
    if (d.dtype == t) return d.name;
  ARIA_FAIL("no safetensors name for dtype ", dtype_name(t));
}

// ---- reading ----
struct SafeTensorsFile::Mapping {
  const unsigned char* data = nullptr;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data) ::munmap(const_cast<unsigned char*>(data), size);
  }
};

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  // A FIFO would block open() forever: refuse anything but a regular file first (O_NONBLOCK covers
  // the race of a swap between the check and the open; the fstat below then refuses it).
  try {
    io::require_regular_file(path, "file");
  } catch (const Error& e) {
    ARIA_FAIL(where(path), e.what());
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  ARIA_CHECK(fd >= 0, where(path), "cannot open: ", std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ARIA_FAIL(where(path), "not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    ARIA_FAIL(where(path), "file is ", size, " bytes, shorter than the 8-byte header length (truncated?)");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);  // the mapping keeps the file contents reachable
  ARIA_CHECK(p != MAP_FAILED, where(path), "mmap failed: ", std::strerror(map_errno));
  auto map = std::make_shared<Mapping>();
  map->data = static_cast<const unsigned char*>(p);
  map->size = size;

  SafeTensorsFile f;
  f.path_ = path;
  f.map_ = map;

  uint64_t n;
  std::memcpy(&n, map->data, 8);
  ARIA_CHECK(n <= size - 8, where(path), "header length ", n, " is larger than the rest of the file (", size - 8,
             " bytes; truncated or not a safetensors file?)");
  ARIA_CHECK(n <= kMaxHeaderBytes, where(path), "header length ", n, " exceeds the 100 MB limit");
  f.data_start_ = 8 + size_t(n);
  const uint64_t buffer_size = size - f.data_start_;

  json header = parse_header_json(reinterpret_cast<const char*>(map->data + 8), size_t(n), path);
  ARIA_CHECK(header.is_object(), where(path), "header must be a JSON object, got ", header.type_name());

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      const json& m = it.value();
      if (m.is_null()) continue;
      ARIA_CHECK(m.is_object(), where(path), "__metadata__ must be an object of strings, got ", m.type_name());
      for (auto mt = m.begin(); mt != m.end(); ++mt) {
        ARIA_CHECK(mt.value().is_string(), where(path), "__metadata__ value of '", mt.key(),
                   "' must be a string, got ", mt.value().dump());
        f.metadata_[mt.key()] = mt.value().get<std::string>();
      }
      continue;
    }
    f.entries_.push_back(parse_entry(it.key(), it.value(), buffer_size, path));
  }
  check_layout(f.entries_, buffer_size, path);
  for (size_t i = 0; i < f.entries_.size(); ++i) f.index_[f.entries_[i].name] = i;
  return f;
}

const SafeTensorEntry* SafeTensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafeTensorsFile::load(const std::string& name, DType to) const {
  const SafeTensorEntry* e = find(name);
  if (!e) {
    // Name a few of the tensors that are there: most misses are a prefix mismatch ("transformer.").
    std::string have;
    size_t shown = 0;
    for (const auto& [n, i] : index_) {
      if (shown == 8) {
        have += ", ... (" + std::to_string(index_.size() - shown) + " more)";
        break;
      }
      have += (shown++ ? ", " : "") + n;
    }
    ARIA_FAIL(where(path_), "no tensor named '", name, "' (", index_.size(), " tensors",
              index_.empty() ? std::string() : ": " + have, ")");
  }
  Tensor out = Tensor::empty(e->shape, to, Device::cpu());
  const size_t n = size_t(shape_numel(e->shape));
  if (n > 0)
    convert(map_->data + data_start_ + e->begin, e->dtype, static_cast<unsigned char*>(out.raw_data()), to, n,
            where(path_) + "tensor '" + name + "': ");
  return out;
}

// ---- writing ----
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Sorted by name (as HF writes them), both in the header and in the data buffer.
  std::vector<std::pair<std::string, Tensor>> items;
  items.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    ARIA_CHECK(!name.empty(), where(path), "empty tensor name");
    ARIA_CHECK(name != "__metadata__", where(path), "'__metadata__' is reserved and cannot name a tensor");
    ARIA_CHECK(t.defined(), where(path), "tensor '", name, "' is undefined");
    // detach: saving must not record autograd history; contiguous: the buffer is row-major.
    items.emplace_back(name, t.detach().to(Device::cpu()).contiguous());
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < items.size(); ++i)
    ARIA_CHECK(items[i].first != items[i - 1].first, where(path), "duplicate tensor name '", items[i].first, "'");

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : items) {
    const uint64_t nb = t.nbytes();
    header[name] = {{"dtype", safetensors_dtype_string(t.dtype())}, {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    ARIA_FAIL(where(path), "cannot encode header (tensor names and metadata must be UTF-8): ", e.what());
  }
  // Pad with spaces (valid JSON whitespace) so the data buffer starts 8-byte aligned, as the
  // reference writer does; readers that cast the mapped bytes rely on it.
  text.append((8 - text.size() % 8) % 8, ' ');
  ARIA_CHECK(text.size() <= kMaxHeaderBytes, where(path), "header would be ", text.size(), " bytes (limit 100 MB)");

  // io::AtomicFile: a temporary beside `path`, fsync, rename, folder fsync; on any error the
  // temporary is removed, so a crash or a full disk never leaves half a checkpoint under `path`.
  try {
    io::AtomicFile out(path);
    uint64_t n = text.size();
    out.write(&n, 8);
    out.write(text.data(), text.size());
    for (const auto& [name, t] : items)
      if (t.nbytes() > 0) out.write(t.raw_data(), t.nbytes());
    out.commit();
  } catch (const Error& e) {
    ARIA_FAIL(where(path), e.what());
  }
}

// ---- non-finite values ----
namespace {

// Index of the first element whose exponent bits are all ones (Inf or NaN), or -1. Blocks are
// first reduced with OR (vectorisable), and only a block with a hit is searched.
template <typename U>
int64_t first_all_ones(const unsigned char* bytes, size_t n, U mask) {
  constexpr size_t kBlock = 4096;
  for (size_t i0 = 0; i0 < n; i0 += kBlock) {
    const size_t e = std::min(n, i0 + kBlock);
    bool hit = false;
    for (size_t i = i0; i < e; ++i) {
      U v;
      std::memcpy(&v, bytes + i * sizeof(U), sizeof(U));
      hit |= (v & mask) == mask;
    }
    if (!hit) continue;
    for (size_t i = i0; i < e; ++i) {
      U v;
      std::memcpy(&v, bytes + i * sizeof(U), sizeof(U));
      if ((v & mask) == mask) return int64_t(i);
    }
  }
  return -1;
}

}  // namespace

int64_t first_nonfinite(const Tensor& t) {
  ARIA_CHECK(t.device().is_cpu() && t.is_contiguous(), "first_nonfinite: needs a contiguous CPU tensor, got ",
             t.str());
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  const size_t n = size_t(t.numel());
  switch (t.dtype()) {
    case DType::F32: return first_all_ones<uint32_t>(p, n, 0x7f800000u);
    case DType::F64: return first_all_ones<uint64_t>(p, n, 0x7ff0000000000000ull);
    case DType::F16: return first_all_ones<uint16_t>(p, n, uint16_t(0x7c00));
    case DType::BF16: return first_all_ones<uint16_t>(p, n, uint16_t(0x7f80));
    default: return -1;  // integers are always finite
  }
}

}  // namespace aria
