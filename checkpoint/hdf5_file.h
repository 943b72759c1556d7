// A small wrapper over the HDF5 C++ API for checkpoint files (SPEC §7): groups by path, float32 datasets
// stored contiguously with their CRC-32 in the attribute `crc32` (and, on reading, how a dataset is stored:
// which chunks, which checksums — older files hold chunked datasets with Fletcher-32 checksums, which still
// read), string, scalar and int64-array attributes. Every HDF5 failure becomes an InputError that names the file and
// the object path; HDF5's own error printing is silenced.
#pragma once

#include <H5Cpp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ratplus {

class Hdf5File {
 public:
  // Creates (or truncates) a file for writing.
  static Hdf5File create(const std::string& path);
  // Opens an existing file read-only; InputError if it is missing, not HDF5, truncated or damaged.
  static Hdf5File open_read_only(const std::string& path);

  const std::string& path() const { return path_; }

  // Creates a group and any missing intermediate groups ("/optim/m").
  void create_group(const std::string& group_path);
  // Writes a float32 dataset of the given shape (1-D or 2-D, row-major) in one contiguous block, straight from
  // `data`, and its CRC-32 (checkpoint/checksum.h) as the attribute `crc32`; intermediate groups are created.
  void write_floats(const std::string& dataset_path, const float* data, const std::vector<int64_t>& shape);
  // Attributes on the object (group or dataset) at `object_path`; "/" is the root group.
  void write_string_attribute(const std::string& object_path, const std::string& name, const std::string& value);
  void write_int64_attribute(const std::string& object_path, const std::string& name, int64_t value);
  void write_double_attribute(const std::string& object_path, const std::string& name, double value);
  void write_uint64_attribute(const std::string& object_path, const std::string& name, uint64_t value);
  // A 1-D int64 attribute (possibly empty).
  void write_int64_array_attribute(const std::string& object_path, const std::string& name,
                                   const std::vector<int64_t>& values);

  bool has_group(const std::string& group_path) const;
  bool has_dataset(const std::string& dataset_path) const;
  // Paths, relative to `group_path`, of every dataset below it (recursively), sorted.
  std::vector<std::string> list_datasets(const std::string& group_path) const;
  std::vector<int64_t> dataset_shape(const std::string& dataset_path) const;
  // InputError naming both types unless the dataset holds float32 (of either byte order): reading never
  // converts from another type.
  void require_float32(const std::string& dataset_path) const;
  // How a dataset is stored. HDF5 reads chunks that are not stored as fill values (zeros) without an error,
  // and checks no checksum for them, so only these numbers tell such a dataset from an intact one.
  struct Storage {
    int64_t chunks = 0;         // the chunks its shape implies (contiguous or compact: 1; no elements: 0)
    int64_t stored_chunks = 0;  // of them, those the file holds
    // A contiguous dataset: it has a `crc32` attribute. A chunked one: Fletcher-32 is among its filters and no
    // stored chunk skipped it.
    bool checksummed = false;
  };
  Storage dataset_storage(const std::string& dataset_path) const;
  // Reads the whole float32 dataset into `out` (`count` elements, which must match) and checks its checksum
  // (the `crc32` attribute's, or each chunk's Fletcher-32). A checksum mismatch or any other read failure is an
  // InputError saying the file is damaged.
  void read_floats(const std::string& dataset_path, float* out, int64_t count) const;
  // Part of a float32 dataset of shape [rows, cols] (a 1-D dataset of n elements is [1, n]): `row_blocks` equal
  // row blocks, from each the rows [row_begin, row_begin + rows / row_blocks) of the block, and the columns
  // [col_begin, col_begin + cols). Of a chunked dataset only that part is read (and its chunks' checksums
  // verified); a dataset with a `crc32` is read whole, checked, and the part copied out (straight into `out`
  // when the part is the whole dataset).
  struct Part {
    int64_t row_blocks = 1, row_begin = 0, rows = 0, col_begin = 0, cols = 0;
  };
  void read_floats(const std::string& dataset_path, float* out, const Part& part) const;
  // Reads a string attribute, fixed- or variable-length.
  std::string read_string_attribute(const std::string& object_path, const std::string& name) const;
  int64_t read_int64_attribute(const std::string& object_path, const std::string& name) const;
  double read_double_attribute(const std::string& object_path, const std::string& name) const;
  // Any integer type; a signed one must hold a non-negative value.
  uint64_t read_uint64_attribute(const std::string& object_path, const std::string& name) const;
  // An integer attribute of any number of elements (a scalar reads as one), converted to int64.
  std::vector<int64_t> read_int64_array_attribute(const std::string& object_path, const std::string& name) const;

  // Flushes and closes the file; further use is an error.
  void close();

 private:
  Hdf5File(std::string path, H5::H5File file) : path_(std::move(path)), file_(std::move(file)) {}

  enum class ObjectKind { none, group, dataset, other };
  ObjectKind kind_of(const std::string& object_path) const;
  H5::DataSet open_dataset(const std::string& dataset_path) const;
  // InputError saying the file is damaged unless the CRC-32 of `count` values read is `stored`.
  void require_crc32(const std::string& dataset_path, uint32_t stored, const float* values, int64_t count) const;
  void read_part_of_checksummed(const std::string& dataset_path, float* out, const Part& part) const;
  // Calls `use` with the group or dataset at a path (InputError if there is none).
  void with_object(const std::string& object_path, const std::function<void(const H5::H5Object&)>& use) const;
  // An existing attribute of any shape.
  H5::Attribute open_attribute(const std::string& object_path, const std::string& name) const;
  // An existing attribute holding a single value.
  H5::Attribute open_single_value_attribute(const std::string& object_path, const std::string& name) const;
  void create_attribute(const std::string& object_path, const std::string& name, const H5::DataType& type,
                        const H5::DataSpace& space, const void* value);
  void create_scalar_attribute(const std::string& object_path, const std::string& name, const H5::DataType& type,
                               const void* value);
  // "file: object: what"
  std::string describe(const std::string& object_path, const std::string& what) const;

  std::string path_;
  H5::H5File file_;
};

// Writes `path` through an AtomicFile (core/atomic_file.h): `fill` writes the temporary file, which is then
// closed and committed. On any failure the temporary file is removed and the error rethrown, so `path` is
// either the complete new file or untouched. With `expected_bytes`, a file system with less space free refuses
// the write before HDF5 starts (HDF5 does not survive a disk that fills under it).
void write_hdf5_atomically(const std::string& path, const std::function<void(Hdf5File&)>& fill,
                           uint64_t expected_bytes = 0);

}  // namespace ratplus
