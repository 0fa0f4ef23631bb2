#include "t2/formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

// Layout (little-endian throughout), as written by ggml's gguf.cpp and gguf-py:
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv × { string key | u32 value type | value }
//   n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   padding to `general.alignment` | data section (tensor offsets are relative to it)
// A string is u64 length + bytes (no terminator); an array is u32 element type + u64 count
// + elements. Version 1 used u32 counts and lengths and is not supported.

namespace t2::formats {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;
// Nested arrays are legal but never deeper than 2 in practice; the cap keeps a hostile file
// from recursing the parser off the stack.
constexpr int kMaxArrayDepth = 8;
// Lower bounds on the encoded size of one metadata entry (key length + type + smallest value)
// and one tensor info (name length + n_dims + type + offset), to reject lying counts before
// allocating for them.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

bool IsKnownValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

std::string_view ValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

// Smallest encoding of one value of type `t` (strings: the length alone; arrays: type+count).
uint64_t MinEncodedSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kString:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kArray:
      return 12;
  }
  return 1;
}

// Bounds-checked cursor over the mapped bytes. Every read copies with memcpy, so nothing
// depends on the alignment of the mapping.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  template <typename T>
  absl::Status Read(T* out, std::string_view what) {
    T2_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, std::string_view what) {
    uint64_t len = 0;
    T2_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return absl::DataLossError(absl::StrCat(AsAbsl(what), " at offset ", pos_ - 8, " has length ",
                                              len, " but only ", remaining(),
                                              " bytes remain in the file"));
    }
    out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(len));
    pos_ += len;
    return absl::OkStatus();
  }

  // DataLossError unless `n` more bytes exist.
  absl::Status Need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      return absl::DataLossError(absl::StrCat("file truncated: ", AsAbsl(what), " at offset ", pos_,
                                              " needs ", n, " bytes, ", remaining(), " remain"));
    }
    return absl::OkStatus();
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

template <typename Wire, typename Held>
absl::Status ReadScalar(Reader& r, GgufValue* out, std::string_view what) {
  Wire w{};
  T2_RETURN_IF_ERROR(r.Read(&w, what));
  out->value = static_cast<Held>(w);
  return absl::OkStatus();
}

// Reads one value of (already validated) type `type` into `out`. `what` names the key.
absl::Status ReadValue(Reader& r, GgufValueType type, int depth, const std::string& what,
                       GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufValueType::kUint8:
      return ReadScalar<uint8_t, uint64_t>(r, out, what);
    case GgufValueType::kInt8:
      return ReadScalar<int8_t, int64_t>(r, out, what);
    case GgufValueType::kUint16:
      return ReadScalar<uint16_t, uint64_t>(r, out, what);
    case GgufValueType::kInt16:
      return ReadScalar<int16_t, int64_t>(r, out, what);
    case GgufValueType::kUint32:
      return ReadScalar<uint32_t, uint64_t>(r, out, what);
    case GgufValueType::kInt32:
      return ReadScalar<int32_t, int64_t>(r, out, what);
    case GgufValueType::kUint64:
      return ReadScalar<uint64_t, uint64_t>(r, out, what);
    case GgufValueType::kInt64:
      return ReadScalar<int64_t, int64_t>(r, out, what);
    case GgufValueType::kFloat32:
      return ReadScalar<float, double>(r, out, what);
    case GgufValueType::kFloat64:
      return ReadScalar<double, double>(r, out, what);
    case GgufValueType::kBool: {
      uint8_t b = 0;
      const uint64_t at = r.pos();
      T2_RETURN_IF_ERROR(r.Read(&b, what));
      if (b > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": bool at offset ", at, " has value ", b, " (must be 0 or 1)"));
      }
      out->value = b != 0;
      return absl::OkStatus();
    }
    case GgufValueType::kString: {
      std::string s;
      T2_RETURN_IF_ERROR(r.ReadString(&s, what));
      out->value = std::move(s);
      return absl::OkStatus();
    }
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": arrays nested deeper than ",
                                                       kMaxArrayDepth, " at offset ", r.pos()));
      }
      const uint64_t at = r.pos();
      uint32_t elem_type_id = 0;
      uint64_t count = 0;
      T2_RETURN_IF_ERROR(r.Read(&elem_type_id, what));
      T2_RETURN_IF_ERROR(r.Read(&count, what));
      if (!IsKnownValueType(elem_type_id)) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": array at offset ", at,
                                                       " has unknown element type ", elem_type_id));
      }
      const auto elem_type = static_cast<GgufValueType>(elem_type_id);
      const uint64_t min_size = MinEncodedSize(elem_type);
      if (count > r.remaining() / min_size) {
        return absl::DataLossError(
            absl::StrCat(what, ": array at offset ", at, " claims ", count, " ",
                         AsAbsl(ValueTypeName(elem_type)), " elements (at least ", min_size,
                         " bytes each) but only ", r.remaining(), " bytes remain in the file"));
      }
      GgufArray array;
      array.element_type = elem_type;
      array.values.resize(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        T2_RETURN_IF_ERROR(ReadValue(r, elem_type, depth + 1, what, &array.values[i]));
      }
      out->value = std::move(array);
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unreachable value type");
}

absl::Status ReadMetadata(Reader& r, uint64_t n_kv, std::map<std::string, GgufValue>* metadata) {
  if (n_kv > r.remaining() / kMinKvBytes) {
    return absl::DataLossError(absl::StrCat("header claims ", n_kv, " metadata entries but only ",
                                            r.remaining(), " bytes remain in the file"));
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    T2_RETURN_IF_ERROR(r.ReadString(&key, absl::StrCat("metadata key #", i)));
    const std::string what = absl::StrCat("metadata key '", key, "'");
    if (metadata->count(key) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate ", what));
    }
    const uint64_t type_at = r.pos();
    uint32_t type_id = 0;
    T2_RETURN_IF_ERROR(r.Read(&type_id, what));
    if (!IsKnownValueType(type_id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": unknown value type ", type_id, " at offset ", type_at));
    }
    GgufValue value;
    T2_RETURN_IF_ERROR(ReadValue(r, static_cast<GgufValueType>(type_id), 0, what, &value));
    metadata->emplace(std::move(key), std::move(value));
  }
  return absl::OkStatus();
}

bool IsIntegerType(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<uint64_t> AlignmentFrom(const std::map<std::string, GgufValue>& metadata) {
  const auto it = metadata.find("general.alignment");
  if (it == metadata.end()) return kDefaultAlignment;
  const GgufValue& v = it->second;
  if (!IsIntegerType(v.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata key 'general.alignment' must be an integer, got ",
                     AsAbsl(ValueTypeName(v.type))));
  }
  if (const auto* s = std::get_if<int64_t>(&v.value); s && *s < 0) {
    return absl::InvalidArgumentError(absl::StrCat("metadata key 'general.alignment' is ", *s,
                                                   ": must be a nonzero power of two"));
  }
  const uint64_t a = std::holds_alternative<uint64_t>(v.value)
                         ? std::get<uint64_t>(v.value)
                         : static_cast<uint64_t>(std::get<int64_t>(v.value));
  if (a == 0 || (a & (a - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("metadata key 'general.alignment' is ", a,
                                                   ": must be a nonzero power of two"));
  }
  return a;
}

// Reads one tensor info and checks everything that does not depend on the data section.
absl::Status ReadTensorInfo(Reader& r, uint64_t index, uint64_t alignment, GgufTensorInfo* t) {
  T2_RETURN_IF_ERROR(r.ReadString(&t->name, absl::StrCat("tensor #", index, " name")));
  const std::string what = absl::StrCat("tensor '", t->name, "'");
  uint32_t n_dims = 0;
  T2_RETURN_IF_ERROR(r.Read(&n_dims, what));
  if (n_dims > kMaxDims) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": n_dims ", n_dims, " exceeds the maximum of ", kMaxDims));
  }
  t->ne.resize(n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) T2_RETURN_IF_ERROR(r.Read(&t->ne[d], what));
  uint32_t type_id = 0;
  T2_RETURN_IF_ERROR(r.Read(&type_id, what));
  T2_RETURN_IF_ERROR(r.Read(&t->offset, what));

  const auto traits = GetGgmlTypeTraits(type_id);
  if (!traits) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": unknown or unsupported ggml type id ", type_id));
  }
  t->type = static_cast<GgmlType>(type_id);
  // Element count must fit int64 (RowMajorShape and ggml both use signed sizes).
  constexpr uint64_t kMaxCount = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t count = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t ne = t->ne[d];
    if (ne == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": dimension ", d, " is 0"));
    }
    if (ne > kMaxCount / count) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": element count overflows (dimension ", d, " is ", ne, ")"));
    }
    count *= ne;
  }
  const auto block = static_cast<uint64_t>(traits->block_elements);
  const uint64_t ne0 = n_dims > 0 ? t->ne[0] : 1;
  if (ne0 % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": row length ", ne0,
                                                   " is not a multiple of the ",
                                                   AsAbsl(traits->name), " block size ", block));
  }
  const uint64_t blocks = count / block;
  const auto block_bytes = static_cast<uint64_t>(traits->block_bytes);
  if (blocks > kMaxCount / block_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": byte size overflows"));
  }
  t->n_elements = count;
  t->n_bytes = blocks * block_bytes;
  if (t->offset % alignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": data offset ", t->offset, " is not a multiple of the alignment ", alignment));
  }
  return absl::OkStatus();
}

absl::Status ParseGguf(std::span<const uint8_t> bytes, uint32_t* version, uint64_t* alignment,
                       std::map<std::string, GgufValue>* metadata,
                       std::vector<GgufTensorInfo>* tensors) {
  Reader r(bytes);
  uint32_t magic = 0;
  T2_RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (magic != kMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a GGUF file: bad magic 0x", absl::Hex(magic, absl::kZeroPad8)));
  }
  T2_RETURN_IF_ERROR(r.Read(version, "version"));
  if (*version != 2 && *version != 3) {
    // A big-endian file reads as a byte-swapped version (e.g. 0x03000000).
    const bool swapped = (*version & 0xFFFF) == 0 && *version != 0;
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported GGUF version ", *version, " (supported: 2 and 3)",
                     swapped ? "; big-endian GGUF files are not supported" : ""));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  T2_RETURN_IF_ERROR(r.Read(&n_tensors, "tensor count"));
  T2_RETURN_IF_ERROR(r.Read(&n_kv, "metadata count"));

  T2_RETURN_IF_ERROR(ReadMetadata(r, n_kv, metadata));
  T2_ASSIGN_OR_RETURN(*alignment, AlignmentFrom(*metadata));

  if (n_tensors > r.remaining() / kMinTensorInfoBytes) {
    return absl::DataLossError(absl::StrCat("header claims ", n_tensors, " tensors but only ",
                                            r.remaining(), " bytes remain in the file"));
  }
  tensors->resize(static_cast<size_t>(n_tensors));
  std::map<std::string_view, uint64_t> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo& t = (*tensors)[i];
    T2_RETURN_IF_ERROR(ReadTensorInfo(r, i, *alignment, &t));
    if (!names.emplace(t.name, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
  }
  if (n_tensors == 0) return absl::OkStatus();

  // The data section starts at the first aligned offset after the tensor infos. pos <= size,
  // and a power-of-two alignment larger than the file just lands past its end.
  const uint64_t pos = r.pos();
  const uint64_t size = bytes.size();
  const uint64_t pad = (*alignment - pos % *alignment) % *alignment;
  if (pad > size - pos) {
    return absl::DataLossError(absl::StrCat("file truncated: data section would start at offset ",
                                            pos, " + ", pad, " padding but the file is ", size,
                                            " bytes"));
  }
  const uint64_t data_start = pos + pad;
  const uint64_t data_size = size - data_start;
  for (GgufTensorInfo& t : *tensors) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      return absl::DataLossError(
          absl::StrCat("tensor '", t.name, "': data at offset ", t.offset, " (", t.n_bytes,
                       " bytes) extends past the end of the data section (", data_size,
                       " bytes at file offset ", data_start, ")"));
    }
    t.data =
        bytes.subspan(static_cast<size_t>(data_start + t.offset), static_cast<size_t>(t.n_bytes));
  }

  std::vector<size_t> order(tensors->size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return (*tensors)[a].offset < (*tensors)[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& prev = (*tensors)[order[k - 1]];
    const GgufTensorInfo& cur = (*tensors)[order[k]];
    if (prev.offset + prev.n_bytes > cur.offset) {  // both in bounds: no overflow
      return absl::InvalidArgumentError(
          absl::StrCat("tensors '", prev.name, "' (offset ", prev.offset, ", ", prev.n_bytes,
                       " bytes) and '", cur.name, "' (offset ", cur.offset, ") overlap"));
    }
  }
  return absl::OkStatus();
}

absl::Status WrongType(const std::string& key, std::string_view wanted, const GgufValue& v) {
  std::string got(ValueTypeName(v.type));
  if (const auto* a = std::get_if<GgufArray>(&v.value)) {
    absl::StrAppend(&got, " of ", AsAbsl(ValueTypeName(a->element_type)));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("metadata key '", key, "' holds ", got, ", not ", AsAbsl(wanted)));
}

absl::Status OutOfRange(const std::string& key, std::string_view wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("metadata key '", key, "' has a value that does not fit ", AsAbsl(wanted)));
}

// Integer value as int64 if it fits.
std::optional<int64_t> AsInt64(const GgufValue& v) {
  if (const auto* s = std::get_if<int64_t>(&v.value)) return *s;
  if (const auto* u = std::get_if<uint64_t>(&v.value);
      u && *u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

std::optional<double> AsDouble(const GgufValue& v) {
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  if (const auto* s = std::get_if<int64_t>(&v.value)) return static_cast<double>(*s);
  if (const auto* u = std::get_if<uint64_t>(&v.value)) return static_cast<double>(*u);
  return std::nullopt;
}

}  // namespace

std::vector<int64_t> GgufTensorInfo::RowMajorShape() const {
  // Open() guarantees every ne fits int64.
  return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

absl::StatusOr<GgufFile> GgufFile::Open(const std::filesystem::path& path) {
  T2_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  GgufFile file;
  file.file_ = std::make_unique<MappedFile>(std::move(mapped));
  absl::Status status = ParseGguf(file.file_->bytes(), &file.version_, &file.alignment_,
                                  &file.metadata_, &file.tensors_);
  if (!status.ok()) return Annotate(status, path.string());
  for (size_t i = 0; i < file.tensors_.size(); ++i) {
    file.tensor_index_.emplace(file.tensors_[i].name, i);
  }
  return file;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

absl::StatusOr<const GgufValue*> Lookup(const std::map<std::string, GgufValue>& metadata,
                                        const std::string& key) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) {
    return absl::NotFoundError(absl::StrCat("metadata key '", key, "' not found"));
  }
  return &it->second;
}

absl::StatusOr<const GgufArray*> LookupArray(const std::map<std::string, GgufValue>& metadata,
                                             const std::string& key, std::string_view wanted) {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata, key));
  const auto* a = std::get_if<GgufArray>(&v->value);
  if (a == nullptr) return WrongType(key, wanted, *v);
  return a;
}

}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, key));
  if (const auto* s = std::get_if<std::string>(&v->value)) return *s;
  return WrongType(key, "string", *v);
}

absl::StatusOr<uint64_t> GgufFile::GetUint(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, key));
  if (const auto* u = std::get_if<uint64_t>(&v->value)) return *u;
  if (const auto* s = std::get_if<int64_t>(&v->value)) {
    if (*s < 0) return OutOfRange(key, "an unsigned integer");
    return static_cast<uint64_t>(*s);
  }
  return WrongType(key, "an integer", *v);
}

absl::StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, key));
  if (!IsIntegerType(v->type)) return WrongType(key, "an integer", *v);
  const auto i = AsInt64(*v);
  if (!i) return OutOfRange(key, "int64");
  return *i;
}

absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, key));
  const auto d = AsDouble(*v);
  if (!d) return WrongType(key, "a number", *v);
  return *d;
}

absl::StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(metadata_, key));
  if (const auto* b = std::get_if<bool>(&v->value)) return *b;
  return WrongType(key, "bool", *v);
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufArray* a, LookupArray(metadata_, key, "an array of strings"));
  if (a->element_type != GgufValueType::kString) {
    return WrongType(key, "an array of strings", metadata_.at(key));
  }
  std::vector<std::string> out;
  out.reserve(a->values.size());
  for (const GgufValue& v : a->values) out.push_back(std::get<std::string>(v.value));
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufArray* a, LookupArray(metadata_, key, "an array of integers"));
  if (!IsIntegerType(a->element_type)) {
    return WrongType(key, "an array of integers", metadata_.at(key));
  }
  std::vector<int64_t> out;
  out.reserve(a->values.size());
  for (const GgufValue& v : a->values) {
    const auto i = AsInt64(v);
    if (!i) return OutOfRange(key, "int64");
    out.push_back(*i);
  }
  return out;
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(const std::string& key) const {
  T2_ASSIGN_OR_RETURN(const GgufArray* a, LookupArray(metadata_, key, "an array of numbers"));
  if (a->element_type != GgufValueType::kFloat32 && a->element_type != GgufValueType::kFloat64 &&
      !IsIntegerType(a->element_type)) {
    return WrongType(key, "an array of numbers", metadata_.at(key));
  }
  std::vector<double> out;
  out.reserve(a->values.size());
  for (const GgufValue& v : a->values) out.push_back(*AsDouble(v));
  return out;
}

}  // namespace t2::formats
