// libFuzzer harness: the safetensors reader (model/safetensors.cpp) on arbitrary files: the u64
// header length, the JSON header (dtypes, shapes, data_offsets, __metadata__) and the data buffer.
// A file the reader accepts must load every tensor, and must survive a save/open round trip with the
// same names, dtypes, shapes and bytes.
#include <cstring>

#include "aria/model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace aria;
  const std::string path = fuzz::write_file("model.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::refused_or_ok([&] {
    const SafeTensorsFile f = SafeTensorsFile::open(path);
    std::vector<std::pair<std::string, Tensor>> loaded;
    for (const SafeTensorEntry& e : f.entries()) {
      Tensor t = f.load(e.name, e.dtype);  // its own dtype: the stored bytes, unchanged
      if (t.nbytes() != e.end - e.begin) std::abort();
      if (is_floating(e.dtype)) (void)first_nonfinite(f.load(e.name, DType::F32));
      loaded.emplace_back(e.name, std::move(t));
    }
    save_safetensors(path + ".again", loaded, f.metadata());
    const SafeTensorsFile g = SafeTensorsFile::open(path + ".again");
    if (g.entries().size() != loaded.size() || g.metadata() != f.metadata()) std::abort();
    for (const auto& [name, t] : loaded) {
      const SafeTensorEntry* e = g.find(name);
      if (!e || e->dtype != t.dtype() || e->shape != t.shape()) std::abort();
      const Tensor u = g.load(name, t.dtype());
      if (t.nbytes() && std::memcmp(t.raw_data(), u.raw_data(), t.nbytes()) != 0) std::abort();
    }
  });
  return 0;
}
