// Reader and writer for the safetensors checkpoint format (the format HF hub models ship in):
//   [u64 little-endian header length N][N bytes of JSON header][data buffer]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
// the data buffer) plus an optional "__metadata__" object of string -> string.
//
// The reader is strict on purpose: a checkpoint that is truncated, has a header that lies about
// sizes, overlapping or gapped tensors, duplicate names or unknown dtypes is rejected with an
// aria::Error naming the file and the tensor, instead of loading garbage into a model.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aria/core/dtype.h"
#include "aria/core/tensor.h"

namespace aria {

struct SafeTensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  size_t begin = 0, end = 0;  // byte range inside the data buffer
};

// safetensors dtype strings ("F32", "BF16", ...) <-> DType. Throws on strings aria does not hold.
DType safetensors_dtype_from_string(const std::string& s);
const char* safetensors_dtype_string(DType t);

class SafeTensorsFile {
 public:
  // Maps the file read-only and validates the whole header; throws aria::Error on any defect.
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // In data-buffer order (ascending begin).
  const std::vector<SafeTensorEntry>& entries() const { return entries_; }
  const SafeTensorEntry* find(const std::string& name) const;
  // A new CPU tensor holding the named tensor converted to `to`. Floating sources (F16/BF16/F32/F64)
  // convert to any floating dtype; integer sources (I32/I64) convert to I32 or I64 (range checked).
  Tensor load(const std::string& name, DType to = DType::F32) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Mapping;  // the mmap'd bytes; shared so that copies of the file object stay valid
  std::string path_;
  std::shared_ptr<const Mapping> map_;
  size_t data_start_ = 0;  // 8 + header length
  std::vector<SafeTensorEntry> entries_;
  std::map<std::string, size_t> index_;  // name -> position in entries_
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device, any layout; each stored in its own dtype) sorted by name, with the
// header padded by spaces to a multiple of 8 bytes so the data buffer is 8-byte aligned.
// Writes through io::AtomicFile (temporary beside `path`, fsync, rename, folder fsync), so a crash
// never leaves half a checkpoint; every write is checked and an error names the file and the reason.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Flat index of the first NaN or Inf in a contiguous CPU tensor (F32, F64, F16, BF16), or -1 when
// every element is finite (always -1 for integer tensors). One pass over the bytes, no conversion:
// cheap enough to run on every tensor of a checkpoint as it is loaded.
int64_t first_nonfinite(const Tensor& t);

}  // namespace aria
