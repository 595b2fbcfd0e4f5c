// safetensors reader/writer: exact roundtrips, hand-written HF-style files, and every way a file can
// be malformed producing a clear aria::Error (never a crash or a silently wrong tensor).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include <sys/stat.h>

#include "aria/model/safetensors.h"
#include "tests/support/test_util.h"

using namespace aria;
namespace fs = std::filesystem;

namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

std::string u64le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// [length][header][data], the header used verbatim (not padded), as some writers produce.
std::string st_bytes(const std::string& header, const std::string& data) { return u64le(header.size()) + header + data; }

template <typename T>
std::string le_bytes(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
  }
  return s;
}

Tensor u16_tensor(DType dt, const std::vector<uint16_t>& bits, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dt, Device::cpu());
  std::memcpy(t.raw_data(), bits.data(), bits.size() * 2);
  return t;
}

std::vector<uint16_t> u16_of(const Tensor& t) {
  std::vector<uint16_t> v(size_t(t.numel()));
  std::memcpy(v.data(), t.raw_data(), v.size() * 2);
  return v;
}

// A small valid file: one F32 [2,2] tensor "a" (16 bytes) and one F16 [2] tensor "b" (4 bytes).
const std::string kGoodHeader =
    R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}})";
const std::string kGoodData = le_bytes<float>({1.f, 2.f, 3.f, 4.f}) + le_bytes<uint16_t>({0x3c00, 0xc000});

// Writes a file whose header is `header` and data kGoodData-like bytes, then expects open to fail
// with a message containing `needle`.
#define CHECK_BAD_FILE(dir, header, data, needle)                                                    \
  do {                                                                                               \
    const std::string _p = (dir).file("bad.safetensors");                                           \
    write_file(_p, st_bytes(header, data));                                                         \
    CHECK_THROWS_WITH_AS(SafeTensorsFile::open(_p), doctest::Contains(needle), aria::Error);         \
  } while (0)

}  // namespace

TEST_CASE("safetensors: roundtrip of every dtype is exact") {
  TempDir td("aria_st_");
  const std::string path = td.file("model.safetensors");

  Tensor f32 = Tensor::from_floats({1.5f, -2.25f, 3.0e-8f, 1e30f, -0.0f, 7.f}, {2, 3});
  Tensor f64 = Tensor::from_vector({0.1, -1e-300, 3.141592653589793, 1e300}, {4}, DType::F64);
  // bit patterns chosen to include inf, a subnormal and the largest finite values
  Tensor bf16 = u16_tensor(DType::BF16, {0x3f80, 0xc040, 0x7f80, 0x0001, 0x7f7f, 0x8000}, {3, 2});
  Tensor f16 = u16_tensor(DType::F16, {0x3c00, 0xc000, 0x7c00, 0x0001, 0x7bff}, {5});
  Tensor i32 = Tensor::from_ints({0, -1, 2147483647, -2147483647 - 1, 50256}, {5});
  Tensor i64 = Tensor::empty({2}, DType::I64, Device::cpu());
  i64.data<int64_t>()[0] = int64_t(1) << 40;
  i64.data<int64_t>()[1] = -3;
  Tensor scalar = Tensor::from_floats({42.f}, {});
  Tensor empty = Tensor::empty({0, 5}, DType::F32, Device::cpu());

  // given out of name order: the writer sorts
  save_safetensors(path,
                   {{"z.f32", f32}, {"f64", f64}, {"bf16", bf16}, {"f16", f16}, {"i32", i32}, {"i64", i64},
                    {"scalar", scalar}, {"empty", empty}},
                   {{"format", "pt"}, {"aria_step", "17"}});

  SafeTensorsFile f = SafeTensorsFile::open(path);
  REQUIRE(f.entries().size() == 8);
  // data laid out in name order
  std::vector<std::string> names;
  for (const auto& e : f.entries()) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"bf16", "empty", "f16", "f64", "i32", "i64", "scalar", "z.f32"});
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("aria_step") == "17");

  // header padded with spaces to a multiple of 8
  std::string bytes = read_file(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(bytes[8 + n - 1] != '\0');

  CHECK(f.find("z.f32")->dtype == DType::F32);
  CHECK(f.find("z.f32")->shape == Shape{2, 3});
  CHECK(f.find("missing") == nullptr);

  Tensor g = f.load("z.f32");
  CHECK(g.shape() == Shape{2, 3});
  CHECK(g.device().is_cpu());
  CHECK(std::memcmp(g.raw_data(), f32.raw_data(), f32.nbytes()) == 0);  // -0.0 kept, bit exact

  Tensor g64 = f.load("f64", DType::F64);
  CHECK(std::memcmp(g64.raw_data(), f64.raw_data(), 32) == 0);

  CHECK(u16_of(f.load("bf16", DType::BF16)) == u16_of(bf16));
  CHECK(u16_of(f.load("f16", DType::F16)) == u16_of(f16));
  CHECK(f.load("i32", DType::I32).to_ints() == i32.to_ints());
  Tensor g_i64 = f.load("i64", DType::I64);
  CHECK(g_i64.data<int64_t>()[0] == int64_t(1) << 40);
  CHECK(g_i64.data<int64_t>()[1] == -3);

  Tensor s = f.load("scalar");
  CHECK(s.dim() == 0);
  CHECK(s.item() == 42.0);
  CHECK(f.load("empty").shape() == Shape{0, 5});

  // conversions to F32
  std::vector<float> bf = f.load("bf16").to_floats();
  CHECK(bf[0] == 1.f);
  CHECK(bf[1] == -3.f);
  CHECK(std::isinf(bf[2]));
  CHECK(bf[4] == bf16_to_float(0x7f7f));
  std::vector<float> hf = f.load("f16").to_floats();
  CHECK(hf[0] == 1.f);
  CHECK(hf[1] == -2.f);
  CHECK(std::isinf(hf[2]));
  CHECK(hf[3] == std::ldexp(1.f, -24));
  CHECK(hf[4] == 65504.f);
  std::vector<float> d2f = f.load("f64").to_floats();
  CHECK(d2f[2] == float(3.141592653589793));
  // F32 -> BF16 rounds to nearest even
  std::vector<uint16_t> to_bf = u16_of(f.load("z.f32", DType::BF16));
  CHECK(to_bf[0] == float_to_bf16(1.5f));
  CHECK(to_bf[1] == float_to_bf16(-2.25f));

  // no temporary file left behind
  int files = 0;
  for (const auto& e : fs::directory_iterator(td.dir)) (void)e, ++files;
  CHECK(files == 1);
}

TEST_CASE("safetensors: empty file list and overwrite") {
  TempDir td("aria_st_");
  const std::string path = td.file("e.safetensors");
  save_safetensors(path, {});
  SafeTensorsFile f = SafeTensorsFile::open(path);
  CHECK(f.entries().empty());
  CHECK(f.metadata().empty());
  // overwriting replaces the file atomically and the old mapping stays readable
  save_safetensors(path, {{"w", Tensor::from_floats({1, 2}, {2})}});
  SafeTensorsFile g = SafeTensorsFile::open(path);
  save_safetensors(path, {{"v", Tensor::from_floats({5}, {1})}});
  CHECK(g.load("w").to_floats() == std::vector<float>{1, 2});
  CHECK(SafeTensorsFile::open(path).load("v").to_floats() == std::vector<float>{5});
}

TEST_CASE("safetensors: non-contiguous and copied file objects") {
  TempDir td("aria_st_");
  const std::string path = td.file("t.safetensors");
  Tensor m = Tensor::from_floats({1, 2, 3, 4, 5, 6}, {2, 3});
  save_safetensors(path, {{"mt", m.transpose(0, 1)}});
  SafeTensorsFile copy = [&] {
    SafeTensorsFile f = SafeTensorsFile::open(path);
    return f;  // the mapping is shared, so copies outlive the original
  }();
  Tensor t = copy.load("mt");
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.to_floats() == std::vector<float>{1, 4, 2, 5, 3, 6});
}

TEST_CASE("safetensors: hand-written HF-style file (unpadded header, metadata, unaligned data)") {
  TempDir td("aria_st_");
  const std::string path = td.file("hf.safetensors");
  // The header length is not a multiple of 8, so the data buffer starts unaligned; the header lists
  // tensors out of data order.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"wte.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]},)"
      R"("ln_f.bias":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  const std::string data = le_bytes<uint16_t>({0x3f80, 0xbf00}) + le_bytes<float>({0.5f, -1.f, 2.f, 8.f});
  REQUIRE(header.size() % 8 != 0);
  write_file(path, st_bytes(header, data));

  SafeTensorsFile f = SafeTensorsFile::open(path);
  REQUIRE(f.entries().size() == 2);
  CHECK(f.entries()[0].name == "ln_f.bias");
  CHECK(f.entries()[0].begin == 0);
  CHECK(f.entries()[1].name == "wte.weight");
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.load("wte.weight").to_floats() == std::vector<float>{0.5f, -1.f, 2.f, 8.f});
  CHECK(f.load("ln_f.bias").to_floats() == std::vector<float>{1.f, -0.5f});
  CHECK(f.load("ln_f.bias", DType::F64).to_doubles() == std::vector<double>{1.0, -0.5});
}

TEST_CASE("safetensors: structural errors name the file and the problem") {
  TempDir td("aria_st_");
  const std::string p = td.file("x.safetensors");

  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(td.file("nope.safetensors")), doctest::Contains("does not exist"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(td.dir.string()), doctest::Contains("is a directory, not a regular file"),
                       aria::Error);
  // A FIFO is refused before open() (which would block forever waiting for a writer).
  const std::string fifo = td.file("fifo.safetensors");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(fifo), doctest::Contains("is a FIFO, not a regular file"), aria::Error);

  write_file(p, "");
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("shorter than the 8-byte"), aria::Error);
  write_file(p, "abc");
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains(p.c_str()), aria::Error);

  write_file(p, u64le(1000) + "{}");
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("larger than the rest of the file"), aria::Error);
  write_file(p, u64le(~uint64_t(0)) + "{}");
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("larger than the rest of the file"), aria::Error);
  {
    // a real 100 MB + 8 byte header would be slow to write; a sparse file of that size is cheap
    std::string head = u64le(100'000'008) + "{}";
    write_file(p, head);
    fs::resize_file(p, 8 + 100'000'008);
    CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("100 MB"), aria::Error);
  }

  CHECK_BAD_FILE(td, "", "", "not valid JSON");
  CHECK_BAD_FILE(td, "{\"a\":", "", "not valid JSON");
  CHECK_BAD_FILE(td, "{\"a\":{}} trailing", "", "not valid JSON");
  CHECK_BAD_FILE(td, "[1,2]", "", "must be a JSON object");
  CHECK_BAD_FILE(td, "\"str\"", "", "must be a JSON object");
  CHECK_BAD_FILE(td, "{\"a\":\"\xff\xfe\"}", "", "not valid JSON");  // invalid UTF-8
}

TEST_CASE("safetensors: entry errors") {
  TempDir td("aria_st_");
  const std::string d8 = std::string(8, '\0');

  CHECK_BAD_FILE(td, R"({"a":[1]})", "", "tensor 'a': entry must be a JSON object");
  CHECK_BAD_FILE(td, R"({"a":{"shape":[2],"data_offsets":[0,8]}})", d8, "missing 'dtype'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", d8, "missing 'shape'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2]}})", d8, "missing 'data_offsets'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", d8, "'dtype' must be a string");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8, "'shape' must be an array");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":8}})", d8, "'data_offsets' must be an array");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", d8,
                 "'data_offsets' must be an array");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}})", d8, "must be an integer");

  // dtypes
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", d8,
                 "tensor 'a': unsupported dtype 'F8_E4M3'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}})", d8, "unsupported dtype 'BOOL'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", d8, "unsupported dtype 'U8'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"float32","shape":[2],"data_offsets":[0,8]}})", d8, "unknown dtype 'float32'");

  // shapes
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8, "must be non-negative");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", d8,
                 "shape dimension must be an integer");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[true],"data_offsets":[0,8]}})", d8, "must be an integer");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", d8,
                 "too large");
  // product overflows 64 bits: must not wrap around to a matching size
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", d8,
                 "lies about the size");

  // offsets
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", d8, "must be non-negative");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", d8, "begin 8 > end 0");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8, "beyond the data buffer");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8, "lies about the size");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", d8, "needs 16 bytes");
}

TEST_CASE("safetensors: layout errors (overlap, gap, trailing bytes, duplicates, metadata)") {
  TempDir td("aria_st_");
  const std::string d16 = std::string(16, '\0');

  CHECK_BAD_FILE(td,
                 R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 std::string(12, '\0'), "overlaps");
  CHECK_BAD_FILE(td,
                 R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 std::string(8, '\0'), "overlaps");
  CHECK_BAD_FILE(td,
                 R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                 d16, "gap of 4 bytes before tensor 'b'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", d16, "gap of 4 bytes");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d16, "8 trailing bytes");
  CHECK_BAD_FILE(td, R"({})", "x", "1 trailing bytes");

  // duplicate tensor names: nlohmann would keep only the last
  CHECK_BAD_FILE(td,
                 R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                 d16, "duplicate tensor name 'a'");
  CHECK_BAD_FILE(td, R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", d16,
                 "duplicate key 'dtype'");

  CHECK_BAD_FILE(td, R"({"__metadata__":{"k":1}})", "", "__metadata__ value of 'k' must be a string");
  CHECK_BAD_FILE(td, R"({"__metadata__":{"k":{"x":"y"}}})", "", "must be a string");
  CHECK_BAD_FILE(td, R"({"__metadata__":["x"]})", "", "__metadata__ must be an object");

  // zero-size tensors sit between others without overlapping
  const std::string p = td.file("z.safetensors");
  write_file(p, st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          le_bytes<float>({1.f, 2.f})));
  SafeTensorsFile f = SafeTensorsFile::open(p);
  CHECK(f.load("b").to_floats() == std::vector<float>{2.f});
  CHECK(f.load("e").numel() == 0);
}

TEST_CASE("safetensors: load errors and dtype conversions") {
  TempDir td("aria_st_");
  const std::string p = td.file("c.safetensors");
  Tensor big = Tensor::empty({2}, DType::I64, Device::cpu());
  big.data<int64_t>()[0] = 7;
  big.data<int64_t>()[1] = int64_t(1) << 33;
  Tensor small = Tensor::empty({2}, DType::I64, Device::cpu());
  small.data<int64_t>()[0] = -5;
  small.data<int64_t>()[1] = 2147483647;
  save_safetensors(p, {{"big", big}, {"small", small}, {"ids", Tensor::from_ints({1, 2}, {2})},
                       {"w", Tensor::from_floats({1, 2}, {2})}});
  SafeTensorsFile f = SafeTensorsFile::open(p);

  CHECK_THROWS_WITH_AS(f.load("wte"), doctest::Contains("no tensor named 'wte'"), aria::Error);
  CHECK_THROWS_WITH_AS(f.load("wte"), doctest::Contains("big, ids, small, w"), aria::Error);
  CHECK_THROWS_WITH_AS(f.load("wte"), doctest::Contains(p.c_str()), aria::Error);

  CHECK(f.load("small", DType::I32).to_ints() == std::vector<int32_t>{-5, 2147483647});
  CHECK(f.load("ids", DType::I64).data<int64_t>()[1] == 2);
  CHECK_THROWS_WITH_AS(f.load("big", DType::I32), doctest::Contains("does not fit in int32"), aria::Error);
  CHECK_THROWS_WITH_AS(f.load("w", DType::I32), doctest::Contains("cannot convert float32 to int32"), aria::Error);
  CHECK_THROWS_WITH_AS(f.load("ids"), doctest::Contains("cannot convert int32 to float32"), aria::Error);
  CHECK_THROWS_WITH_AS(f.load("ids"), doctest::Contains("tensor 'ids'"), aria::Error);
}

TEST_CASE("safetensors: writer rejects bad input and leaves no file") {
  TempDir td("aria_st_");
  const std::string p = td.file("w.safetensors");
  Tensor t = Tensor::from_floats({1}, {1});
  CHECK_THROWS_WITH_AS(save_safetensors(p, {{"a", t}, {"a", t}}), doctest::Contains("duplicate tensor name 'a'"),
                       aria::Error);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {{"__metadata__", t}}), doctest::Contains("reserved"), aria::Error);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {{"", t}}), doctest::Contains("empty tensor name"), aria::Error);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {{"u", Tensor()}}), doctest::Contains("undefined"), aria::Error);
  CHECK_THROWS_WITH_AS(save_safetensors(p, {{"bad\xff", t}}), doctest::Contains("UTF-8"), aria::Error);
  CHECK_THROWS_WITH_AS(save_safetensors(td.file("no/such/dir/x.safetensors"), {{"a", t}}),
                       doctest::Contains("cannot create"), aria::Error);
  CHECK(fs::is_empty(td.dir));
}

TEST_CASE("safetensors: truncated and corrupted files never crash") {
  TempDir td("aria_st_");
  const std::string good = td.file("good.safetensors");
  save_safetensors(good,
                   {{"h.0.w", Tensor::from_floats({1, 2, 3, 4, 5, 6}, {2, 3})},
                    {"h.0.b", u16_tensor(DType::BF16, {0x3f80, 0x4000}, {2})},
                    {"ids", Tensor::from_ints({1, 2, 3}, {3})}},
                   {{"format", "pt"}});
  const std::string bytes = read_file(good);
  const std::string p = td.file("cut.safetensors");

  // Every proper prefix is invalid (the tensors must tile the buffer exactly).
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    write_file(p, bytes.substr(0, cut));
    CAPTURE(cut);
    CHECK_THROWS_AS(SafeTensorsFile::open(p), aria::Error);
  }
  write_file(p, bytes + "x");
  CHECK_THROWS_WITH_AS(SafeTensorsFile::open(p), doctest::Contains("trailing"), aria::Error);

  // Single-byte corruption anywhere: either a clean aria::Error or a file that loads.
  std::mt19937 rng(1234);
  int opened = 0, rejected = 0;
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    for (int trial = 0; trial < 3; ++trial) {
      std::string bad = bytes;
      bad[pos] = char(rng() & 0xff);
      write_file(p, bad);
      CAPTURE(pos);
      try {
        SafeTensorsFile f = SafeTensorsFile::open(p);
        for (const auto& e : f.entries()) {
          try {
            (void)f.load(e.name, e.dtype);
          } catch (const aria::Error&) {
          }
        }
        ++opened;
      } catch (const aria::Error&) {
        ++rejected;
      }
    }
  }
  CHECK(opened > 0);    // corrupting data bytes is undetectable by design
  CHECK(rejected > 0);  // corrupting the header mostly is
}
