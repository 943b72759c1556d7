// The HDF5 checkpoint-file wrapper: path handling, contiguous float datasets with a CRC-32 attribute (and
// reading the chunked Fletcher-32 ones of older files), how a dataset is stored (its chunks and their
// checksums), attributes, error translation, and whole files written through an AtomicFile.
#include "checkpoint/hdf5_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <numeric>
#include <optional>
#include <system_error>

#include "checkpoint/checksum.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace ratplus {
namespace {

namespace fs = std::filesystem;

// The attribute holding a contiguous dataset's CRC-32 (checksum.h) of its stored little-endian bytes.
const char* const kChecksumAttribute = "crc32";
// Objects of 64 KiB and more start at a multiple of 4 KiB (a page): large writes and reads stay aligned.
constexpr hsize_t kAlignThreshold = hsize_t{64} << 10, kAlignment = 4096;

// Runs an HDF5 operation, turning HDF5 exceptions into an InputError that starts with `context`.
template <class Body>
auto hdf5_guard(const std::string& context, Body&& body) {
  try {
    return body();
  } catch (const H5::Exception& e) {
    throw InputError(context + " (HDF5: " + e.getDetailMsg() + ")");
  }
}

// Throws, for hdf5_guard to translate, when a call of HDF5's C API (which has no C++ wrapper) failed.
void check_c_call(herr_t status, const char* function) {
  if (status < 0) throw H5::Exception(function, std::string(function) + " failed");
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string attribute_label(const std::string& object_path, const std::string& name) {
  return object_path + "@" + name;
}

// The element type as text: "float32", "float16", "int32", "uint8", "strings", ...
std::string type_name(const H5::DataSet& dataset) {
  const H5::DataType type = dataset.getDataType();
  const std::string bits = std::to_string(8 * type.getSize());
  switch (type.getClass()) {
    case H5T_FLOAT: return "float" + bits;
    case H5T_INTEGER: return (dataset.getIntType().getSign() == H5T_SGN_NONE ? "uint" : "int") + bits;
    case H5T_STRING: return "strings";
    default: return "a non-numeric type";
  }
}

// The position of Fletcher-32 in a dataset's filter pipeline, or -1.
int fletcher32_position(const H5::DSetCreatPropList& layout) {
  for (int i = 0; i < layout.getNfilters(); ++i) {
    unsigned flags = 0, filter_config = 0;
    size_t n_values = 0;
    char name[32];
    if (layout.getFilter(i, flags, n_values, nullptr, sizeof name, name, filter_config) == H5Z_FILTER_FLETCHER32)
      return i;
  }
  return -1;
}

// The chunks a chunked dataset's shape implies: the product over dimensions of ⌈extent / chunk extent⌉.
int64_t implied_chunks(const H5::DataSet& dataset, const H5::DSetCreatPropList& layout) {
  const H5::DataSpace space = dataset.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(rank), chunk(rank);
  space.getSimpleExtentDims(dims.data());
  layout.getChunk(rank, chunk.data());
  int64_t chunks = 1;
  for (int i = 0; i < rank; ++i) chunks *= static_cast<int64_t>((dims[i] + chunk[i] - 1) / chunk[i]);
  return chunks;
}

// The stored chunks of a chunked dataset, from its chunk index; whether each has its checksum: the filter at
// `checksum_position` (-1: none) is not marked skipped for it.
void count_stored_chunks(const H5::DataSet& dataset, int checksum_position, Hdf5File::Storage& storage) {
  const H5::DataSpace space = dataset.getSpace();  // HDF5 1.10 takes no H5S_ALL here
  hsize_t listed = 0;
  check_c_call(H5Dget_num_chunks(dataset.getId(), space.getId(), &listed), "H5Dget_num_chunks");
  std::vector<hsize_t> offset(space.getSimpleExtentNdims());
  storage.checksummed = checksum_position >= 0;
  for (hsize_t i = 0; i < listed; ++i) {
    unsigned skipped_filters = 0;  // bit k: filter k of the pipeline was not applied to this chunk
    haddr_t address = HADDR_UNDEF;
    hsize_t bytes = 0;
    check_c_call(
        H5Dget_chunk_info(dataset.getId(), space.getId(), i, offset.data(), &skipped_filters, &address, &bytes),
        "H5Dget_chunk_info");
    if (address == HADDR_UNDEF) continue;
    ++storage.stored_chunks;
    if (storage.checksummed) storage.checksummed = (skipped_filters >> checksum_position & 1u) == 0;
  }
}

// The CRC-32 a dataset carries in its attribute, if any.
std::optional<uint32_t> stored_crc32(const H5::DataSet& dataset) {
  if (!dataset.attrExists(kChecksumAttribute)) return std::nullopt;
  const H5::Attribute attribute = dataset.openAttribute(kChecksumAttribute);
  if (attribute.getTypeClass() != H5T_INTEGER || attribute.getSpace().getSimpleExtentNpoints() != 1)
    throw H5::Exception("crc32", "the crc32 attribute is not one integer");
  uint32_t crc = 0;
  attribute.read(H5::PredType::NATIVE_UINT32, &crc);
  return crc;
}

void collect_datasets(const H5::Group& group, const std::string& prefix, std::vector<std::string>& out) {
  for (hsize_t i = 0; i < group.getNumObjs(); ++i) {
    const std::string name = group.getObjnameByIdx(i);
    const H5O_type_t type = group.childObjType(name);
    if (type == H5O_TYPE_DATASET) out.push_back(prefix + name);
    if (type == H5O_TYPE_GROUP) collect_datasets(group.openGroup(name), prefix + name + "/", out);
  }
}

}  // namespace

Hdf5File Hdf5File::create(const std::string& path) {
  H5::Exception::dontPrint();
  return hdf5_guard(path + ": cannot create HDF5 file (is its directory there and writable?)", [&] {
    H5::FileAccPropList access;
    access.setAlignment(kAlignThreshold, kAlignment);
    return Hdf5File(path, H5::H5File(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, access));
  });
}

Hdf5File Hdf5File::open_read_only(const std::string& path) {
  H5::Exception::dontPrint();
  std::error_code error;
  require_input(fs::is_regular_file(path, error), path + ": no such file");
  const bool is_hdf5 = hdf5_guard(path + ": cannot read file", [&] { return H5::H5File::isHdf5(path); });
  require_input(is_hdf5, path + ": not an HDF5 file");
  return hdf5_guard(path + ": cannot open HDF5 file: it is truncated or damaged",
                    [&] { return Hdf5File(path, H5::H5File(path, H5F_ACC_RDONLY)); });
}

void Hdf5File::create_group(const std::string& group_path) {
  hdf5_guard(describe(group_path, "cannot create group"), [&] {
    H5::LinkCreatPropList links;
    links.setCreateIntermediateGroup(true);
    file_.createGroup(group_path, links);
  });
}

void Hdf5File::write_floats(const std::string& dataset_path, const float* data, const std::vector<int64_t>& shape) {
  check_internal(shape.size() == 1 || shape.size() == 2, "write_floats: shape must be 1-D or 2-D");
  check_internal(std::all_of(shape.begin(), shape.end(), [](int64_t n) { return n >= 0; }),
                 "write_floats: negative dimension");
  const size_t bytes = sizeof(float) * static_cast<size_t>(std::accumulate(shape.begin(), shape.end(), int64_t{1},
                                                                           std::multiplies<>()));
  // The checksum is computed while HDF5 writes the same (unchanging) values.
  std::future<uint32_t> crc = std::async(std::launch::async, [data, bytes] { return crc32_of(data, bytes); });
  hdf5_guard(describe(dataset_path, "cannot write dataset"), [&] {
    const std::vector<hsize_t> dims(shape.begin(), shape.end());
    const int rank = static_cast<int>(dims.size());
    // One contiguous block, written in one call from `data` (no chunking, no filter, no fill values first).
    H5::DSetCreatPropList layout;
    layout.setLayout(H5D_CONTIGUOUS);
    layout.setFillTime(H5D_FILL_TIME_NEVER);
    H5::LinkCreatPropList links;
    links.setCreateIntermediateGroup(true);
    const H5::DataSet dataset = file_.createDataSet(dataset_path, H5::PredType::IEEE_F32LE,
                                                    H5::DataSpace(rank, dims.data()), layout,
                                                    H5::DSetAccPropList::DEFAULT, links);
    dataset.write(data, H5::PredType::NATIVE_FLOAT);
    const uint32_t checksum = crc.get();
    dataset.createAttribute(kChecksumAttribute, H5::PredType::STD_U32LE, H5::DataSpace(H5S_SCALAR))
        .write(H5::PredType::NATIVE_UINT32, &checksum);
  });
}

void Hdf5File::write_string_attribute(const std::string& object_path, const std::string& name,
                                      const std::string& value) {
  // Fixed-length, NUL-padded UTF-8: HDF5 reads it without its global heap, whose parsing of a damaged file
  // can crash or hang inside the library (docs/RELIABILITY.md). Readers take both kinds.
  H5::StrType type(H5::PredType::C_S1, std::max<size_t>(value.size(), 1));
  type.setCset(H5T_CSET_UTF8);
  type.setStrpad(H5T_STR_NULLPAD);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  create_scalar_attribute(object_path, name, type, padded.data());
}

void Hdf5File::write_int64_attribute(const std::string& object_path, const std::string& name, int64_t value) {
  create_scalar_attribute(object_path, name, H5::PredType::STD_I64LE, &value);
}

void Hdf5File::write_double_attribute(const std::string& object_path, const std::string& name, double value) {
  create_scalar_attribute(object_path, name, H5::PredType::IEEE_F64LE, &value);
}

void Hdf5File::write_uint64_attribute(const std::string& object_path, const std::string& name, uint64_t value) {
  create_scalar_attribute(object_path, name, H5::PredType::STD_U64LE, &value);
}

void Hdf5File::write_int64_array_attribute(const std::string& object_path, const std::string& name,
                                           const std::vector<int64_t>& values) {
  const hsize_t count = values.size();
  create_attribute(object_path, name, H5::PredType::STD_I64LE, H5::DataSpace(1, &count), values.data());
}

bool Hdf5File::has_group(const std::string& group_path) const { return kind_of(group_path) == ObjectKind::group; }

bool Hdf5File::has_dataset(const std::string& dataset_path) const {
  return kind_of(dataset_path) == ObjectKind::dataset;
}

std::vector<std::string> Hdf5File::list_datasets(const std::string& group_path) const {
  require_input(has_group(group_path), describe(group_path, "no such group"));
  return hdf5_guard(describe(group_path, "cannot list group"), [&] {
    std::vector<std::string> names;
    collect_datasets(file_.openGroup(group_path), "", names);
    std::sort(names.begin(), names.end());
    return names;
  });
}

std::vector<int64_t> Hdf5File::dataset_shape(const std::string& dataset_path) const {
  const H5::DataSet dataset = open_dataset(dataset_path);
  return hdf5_guard(describe(dataset_path, "cannot read shape"), [&] {
    const H5::DataSpace space = dataset.getSpace();
    std::vector<hsize_t> dims(space.getSimpleExtentNdims());
    space.getSimpleExtentDims(dims.data());
    return std::vector<int64_t>(dims.begin(), dims.end());
  });
}

void Hdf5File::require_float32(const std::string& dataset_path) const {
  const H5::DataSet dataset = open_dataset(dataset_path);
  const std::string type = hdf5_guard(describe(dataset_path, "cannot read type"), [&] { return type_name(dataset); });
  require_input(type == "float32", describe(dataset_path, "holds " + type + ", expected float32"));
}

Hdf5File::Storage Hdf5File::dataset_storage(const std::string& dataset_path) const {
  const H5::DataSet dataset = open_dataset(dataset_path);
  return hdf5_guard(describe(dataset_path, "cannot read how the dataset is stored: the file is damaged"), [&] {
    const H5::DSetCreatPropList layout = dataset.getCreatePlist();
    const int64_t blocks = dataset.getSpace().getSimpleExtentNpoints() > 0 ? 1 : 0;  // unchunked data: one block
    Storage storage;
    switch (layout.getLayout()) {
      case H5D_CHUNKED:
        storage.chunks = implied_chunks(dataset, layout);
        count_stored_chunks(dataset, fletcher32_position(layout), storage);
        break;
      case H5D_CONTIGUOUS: {
        H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
        dataset.getSpaceStatus(status);
        storage.chunks = blocks;
        storage.stored_chunks = status == H5D_SPACE_STATUS_ALLOCATED ? blocks : 0;
        storage.checksummed = dataset.attrExists(kChecksumAttribute);
        break;
      }
      case H5D_COMPACT:  // the data lives in the dataset's header
        storage.chunks = storage.stored_chunks = blocks;
        break;
      default:  // a virtual dataset: its data lives in other files
        storage.chunks = 1;
        break;
    }
    return storage;
  });
}

void Hdf5File::read_floats(const std::string& dataset_path, float* out, int64_t count) const {
  require_float32(dataset_path);
  const H5::DataSet dataset = open_dataset(dataset_path);
  const hssize_t found = hdf5_guard(describe(dataset_path, "cannot read shape"),
                                    [&] { return dataset.getSpace().getSimpleExtentNpoints(); });
  require_input(found == count, describe(dataset_path, "holds " + std::to_string(found) + " elements, expected " +
                                                           std::to_string(count)));
  const std::optional<uint32_t> crc =
      hdf5_guard(describe(dataset_path, "cannot read data: the file is damaged"), [&] {
        dataset.read(out, H5::PredType::NATIVE_FLOAT);
        return stored_crc32(dataset);
      });
  if (crc) require_crc32(dataset_path, *crc, out, count);
}

void Hdf5File::require_crc32(const std::string& dataset_path, uint32_t stored, const float* values,
                             int64_t count) const {
  const uint32_t found = crc32_of(values, sizeof(float) * static_cast<size_t>(count));
  require_input(found == stored, describe(dataset_path, fmt::format("checksum mismatch (CRC-32 {:08x} stored, {:08x} "
                                                                    "read): the file is damaged",
                                                                    stored, found)));
}

void Hdf5File::read_floats(const std::string& dataset_path, float* out, const Part& part) const {
  require_float32(dataset_path);
  const H5::DataSet dataset = open_dataset(dataset_path);
  const bool whole_checksum = hdf5_guard(describe(dataset_path, "cannot read its checksum: the file is damaged"),
                                         [&] { return dataset.attrExists(kChecksumAttribute); });
  if (whole_checksum) return read_part_of_checksummed(dataset_path, out, part);
  hdf5_guard(describe(dataset_path, "cannot read data: the file is damaged"), [&] {
    H5::DataSpace space = dataset.getSpace();
    const int rank = space.getSimpleExtentNdims();
    std::vector<hsize_t> dims(rank);
    space.getSimpleExtentDims(dims.data());
    const hsize_t rows = rank == 2 ? dims[0] : 1, block_rows = static_cast<hsize_t>(part.rows / part.row_blocks);
    check_internal(rank >= 1 && rank <= 2 && rows % part.row_blocks == 0 &&
                       part.row_begin + block_rows <= rows / part.row_blocks &&
                       static_cast<hsize_t>(part.col_begin + part.cols) <= dims[rank - 1],
                   "read_floats: part outside the dataset");
    const hsize_t dataset_cols = dims[rank - 1];
    if (part.row_begin == 0 && part.col_begin == 0 && block_rows * part.row_blocks == rows &&
        static_cast<hsize_t>(part.cols) == dataset_cols)
      return dataset.read(out, H5::PredType::NATIVE_FLOAT);  // the whole tensor: HDF5's fast path
    // Row blocks are strided: one hyperslab block per row block, in the file's row-major order; the memory
    // space has the selection's shape, so HDF5 copies whole rows.
    const hsize_t start[2] = {static_cast<hsize_t>(part.row_begin), static_cast<hsize_t>(part.col_begin)};
    const hsize_t stride[2] = {rows / part.row_blocks, 1};
    const hsize_t count[2] = {static_cast<hsize_t>(part.row_blocks), 1};
    const hsize_t block[2] = {block_rows, static_cast<hsize_t>(part.cols)};
    if (rank == 2) {
      space.selectHyperslab(H5S_SELECT_SET, count, start, stride, block);
    } else {
      space.selectHyperslab(H5S_SELECT_SET, count + 1, start + 1, stride + 1, block + 1);
    }
    const hsize_t memory_dims[2] = {static_cast<hsize_t>(part.rows), static_cast<hsize_t>(part.cols)};
    dataset.read(out, H5::PredType::NATIVE_FLOAT, H5::DataSpace(rank, rank == 2 ? memory_dims : memory_dims + 1),
                 space);
  });
}

void Hdf5File::read_part_of_checksummed(const std::string& dataset_path, float* out, const Part& part) const {
  const std::vector<int64_t> shape = dataset_shape(dataset_path);
  const int64_t rows = shape.size() == 2 ? shape[0] : 1, cols = shape.back();
  const int64_t block_rows = part.rows / part.row_blocks;
  check_internal(rows % part.row_blocks == 0 && part.row_begin + block_rows <= rows / part.row_blocks &&
                     part.col_begin + part.cols <= cols,
                 "read_floats: part outside the dataset");
  if (part.row_begin == 0 && part.col_begin == 0 && part.rows == rows && part.cols == cols)
    return read_floats(dataset_path, out, rows * cols);  // straight into `out`, checked there
  // The checksum covers the whole dataset: read and check all of it, then copy the part's rows out.
  std::vector<float> whole(static_cast<size_t>(rows * cols));
  read_floats(dataset_path, whole.data(), rows * cols);
  const int64_t block_stride = rows / part.row_blocks;
  for (int64_t block = 0; block < part.row_blocks; ++block)
    for (int64_t row = 0; row < block_rows; ++row)
      std::memcpy(out + (block * block_rows + row) * part.cols,
                  whole.data() + (block * block_stride + part.row_begin + row) * cols + part.col_begin,
                  sizeof(float) * static_cast<size_t>(part.cols));
}

std::string Hdf5File::read_string_attribute(const std::string& object_path, const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  const H5::Attribute attribute = open_single_value_attribute(object_path, name);
  return hdf5_guard(describe(label, "cannot read string attribute"), [&] {
    require_input(attribute.getTypeClass() == H5T_STRING, describe(label, "is not a string"));
    const H5::StrType type = attribute.getStrType();
    std::string value;
    if (!type.isVariableStr()) {
      attribute.read(type, value);
      return value;
    }
    // Through the C API: HDF5's C++ wrapper passes the string it reads to strlen, also when it is null.
    char* text = nullptr;
    H5::StrType memory(H5::PredType::C_S1, H5T_VARIABLE);
    memory.setCset(type.getCset());
    check_c_call(H5Aread(attribute.getId(), memory.getId(), &text), "H5Aread");
    require_input(text != nullptr, describe(label, "holds no string (a null variable-length string)"));
    value = text;
    H5free_memory(text);
    return value;
  });
}

int64_t Hdf5File::read_int64_attribute(const std::string& object_path, const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  const H5::Attribute attribute = open_single_value_attribute(object_path, name);
  return hdf5_guard(describe(label, "cannot read integer attribute"), [&] {
    require_input(attribute.getTypeClass() == H5T_INTEGER, describe(label, "is not an integer"));
    int64_t value = 0;
    attribute.read(H5::PredType::NATIVE_INT64, &value);
    return value;
  });
}

double Hdf5File::read_double_attribute(const std::string& object_path, const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  const H5::Attribute attribute = open_single_value_attribute(object_path, name);
  return hdf5_guard(describe(label, "cannot read number attribute"), [&] {
    require_input(attribute.getTypeClass() == H5T_FLOAT, describe(label, "is not a floating-point number"));
    double value = 0;
    attribute.read(H5::PredType::NATIVE_DOUBLE, &value);
    return value;
  });
}

uint64_t Hdf5File::read_uint64_attribute(const std::string& object_path, const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  const H5::Attribute attribute = open_single_value_attribute(object_path, name);
  return hdf5_guard(describe(label, "cannot read integer attribute"), [&] {
    require_input(attribute.getTypeClass() == H5T_INTEGER, describe(label, "is not an integer"));
    if (attribute.getIntType().getSign() == H5T_SGN_NONE) {
      uint64_t value = 0;
      attribute.read(H5::PredType::NATIVE_UINT64, &value);
      return value;
    }
    int64_t value = 0;
    attribute.read(H5::PredType::NATIVE_INT64, &value);
    require_input(value >= 0, describe(label, "is negative (" + std::to_string(value) + ")"));
    return static_cast<uint64_t>(value);
  });
}

std::vector<int64_t> Hdf5File::read_int64_array_attribute(const std::string& object_path,
                                                          const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  const H5::Attribute attribute = open_attribute(object_path, name);
  return hdf5_guard(describe(label, "cannot read integer attribute"), [&] {
    require_input(attribute.getTypeClass() == H5T_INTEGER, describe(label, "is not an integer"));
    std::vector<int64_t> values(attribute.getSpace().getSimpleExtentNpoints());
    if (!values.empty()) attribute.read(H5::PredType::NATIVE_INT64, values.data());
    return values;
  });
}

void Hdf5File::close() {
  hdf5_guard(path_ + ": cannot write HDF5 file", [&] { file_.close(); });
}

Hdf5File::ObjectKind Hdf5File::kind_of(const std::string& object_path) const {
  return hdf5_guard(describe(object_path, "cannot look up object"), [&] {
    std::string prefix;
    H5O_type_t type = H5O_TYPE_GROUP;  // the root group
    for (const std::string& part : split_path(object_path)) {
      if (type != H5O_TYPE_GROUP) return ObjectKind::none;  // a path through a non-group
      prefix += "/" + part;
      if (!file_.nameExists(prefix)) return ObjectKind::none;
      type = file_.childObjType(prefix);
    }
    if (type == H5O_TYPE_GROUP) return ObjectKind::group;
    return type == H5O_TYPE_DATASET ? ObjectKind::dataset : ObjectKind::other;
  });
}

H5::DataSet Hdf5File::open_dataset(const std::string& dataset_path) const {
  require_input(has_dataset(dataset_path), describe(dataset_path, "no such dataset"));
  return hdf5_guard(describe(dataset_path, "cannot open dataset"), [&] { return file_.openDataSet(dataset_path); });
}

void Hdf5File::with_object(const std::string& object_path,
                           const std::function<void(const H5::H5Object&)>& use) const {
  const ObjectKind kind = kind_of(object_path);
  require_input(kind == ObjectKind::group || kind == ObjectKind::dataset,
                describe(object_path, "no such group or dataset"));
  hdf5_guard(describe(object_path, "cannot open object"), [&] {
    if (kind == ObjectKind::group) use(file_.openGroup(object_path));
    else use(file_.openDataSet(object_path));
  });
}

H5::Attribute Hdf5File::open_attribute(const std::string& object_path, const std::string& name) const {
  const std::string label = attribute_label(object_path, name);
  std::optional<H5::Attribute> attribute;
  with_object(object_path, [&](const H5::H5Object& object) {
    require_input(object.attrExists(name), describe(label, "no such attribute"));
    attribute.emplace(object.openAttribute(name));
  });
  return *attribute;
}

H5::Attribute Hdf5File::open_single_value_attribute(const std::string& object_path, const std::string& name) const {
  const H5::Attribute attribute = open_attribute(object_path, name);
  const std::string label = attribute_label(object_path, name);
  return hdf5_guard(describe(label, "cannot open attribute"), [&] {
    require_input(attribute.getSpace().getSimpleExtentNpoints() == 1, describe(label, "is not a single value"));
    return attribute;
  });
}

void Hdf5File::create_attribute(const std::string& object_path, const std::string& name, const H5::DataType& type,
                                const H5::DataSpace& space, const void* value) {
  with_object(object_path, [&](const H5::H5Object& object) {
    hdf5_guard(describe(attribute_label(object_path, name), "cannot write attribute"),
               [&] {
                 const H5::Attribute attribute = object.createAttribute(name, type, space);
                 if (space.getSimpleExtentNpoints() > 0) attribute.write(type, value);  // empty: nothing to write
               });
  });
}

void Hdf5File::create_scalar_attribute(const std::string& object_path, const std::string& name,
                                       const H5::DataType& type, const void* value) {
  create_attribute(object_path, name, type, H5::DataSpace(H5S_SCALAR), value);
}

std::string Hdf5File::describe(const std::string& object_path, const std::string& what) const {
  return path_ + ": " + object_path + ": " + what;
}

void write_hdf5_atomically(const std::string& path, const std::function<void(Hdf5File&)>& fill,
                           uint64_t expected_bytes) {
  AtomicFile out(path, expected_bytes);
  Hdf5File file = Hdf5File::create(out.temporary());
  fill(file);
  file.close();
  out.commit();
}

}  // namespace ratplus
