// Minimal HDF5 access for gleam-infer: complex64 / float32 datasets and string attributes,
// as h5py writes them (complex = compound {r, i} of floats). Every failure throws
// std::runtime_error naming the file, the dataset and what was expected.
#pragma once

#include <ATen/ATen.h>

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gleam::infer {

// An open HDF5 file (read-only or a fresh one for writing); closes on destruction.
class H5File {
 public:
  static H5File open_read(const std::string& path);
  static H5File create(const std::string& path);
  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&&) = delete;
  H5File(const H5File&) = delete;
  ~H5File();

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const;
  // The dataset's shape; throws if it does not exist.
  std::vector<int64_t> shape(const std::string& name) const;
  // A complex dataset (h5py's compound {r, i}, float32 or float64) as a complex64 tensor.
  at::Tensor read_complex(const std::string& name) const;
  // A real (float or integer) dataset as a float32 tensor.
  at::Tensor read_float(const std::string& name) const;
  // A root string attribute, if present.
  std::optional<std::string> string_attr(const std::string& name) const;

  void write_complex(const std::string& name, const at::Tensor& t);
  void write_float(const std::string& name, const at::Tensor& t);
  void write_string_attr(const std::string& name, const std::string& value);

 private:
  H5File(hid_t id, std::string path) : id_(id), path_(std::move(path)) {}
  hid_t id_;
  std::string path_;
};

}  // namespace gleam::infer
