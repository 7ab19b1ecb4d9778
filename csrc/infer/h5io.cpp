#include "infer/h5io.h"

#include <c10/util/complex.h>

#include <stdexcept>

namespace gleam::infer {
namespace {

// Closes an HDF5 handle with the matching function when it goes out of scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// h5py's complex64 layout: a compound {r, i} of two floats.
Handle complex_type() {
  Handle t(H5Tcreate(H5T_COMPOUND, sizeof(c10::complex<float>)), H5Tclose);
  H5Tinsert(t.id, "r", 0, H5T_NATIVE_FLOAT);
  H5Tinsert(t.id, "i", sizeof(float), H5T_NATIVE_FLOAT);
  return Handle(H5Tcopy(t.id), H5Tclose);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

}  // namespace

H5File H5File::open_read(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // our messages, not HDF5's error stack dumps
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw std::runtime_error(path + ": not an HDF5 file (or it does not exist)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw std::runtime_error(path + ": cannot open the HDF5 file");
  return H5File(id, path);
}

H5File H5File::create(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw std::runtime_error(path + ": cannot create the HDF5 file");
  return H5File(id, path);
}

H5File::H5File(H5File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) { other.id_ = -1; }

H5File::~H5File() {
  if (id_ >= 0) H5Fclose(id_);
}

bool H5File::has(const std::string& name) const { return H5Lexists(id_, name.c_str(), H5P_DEFAULT) > 0; }

std::vector<int64_t> H5File::shape(const std::string& name) const {
  if (!has(name)) throw std::runtime_error(path_ + ": no dataset '" + name + "'");
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id < 0) throw std::runtime_error(path_ + ": '" + name + "' is not a dataset");
  Handle space(H5Dget_space(ds.id), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.id);
  if (nd < 0) throw std::runtime_error(path_ + ": cannot read the shape of '" + name + "'");
  std::vector<hsize_t> dims(nd);
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

at::Tensor H5File::read_complex(const std::string& name) const {
  auto dims = shape(name);
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle ftype(H5Dget_type(ds.id), H5Tclose);
  bool is_complex = H5Tget_class(ftype.id) == H5T_COMPOUND && H5Tget_nmembers(ftype.id) == 2 &&
                    H5Tget_member_index(ftype.id, "r") >= 0 && H5Tget_member_index(ftype.id, "i") >= 0;
  if (!is_complex)
    throw std::runtime_error(path_ + ": dataset '" + name + "' " + shape_str(dims) +
                             " is not complex (expected h5py's complex64, a compound {r, i})");
  at::Tensor out = at::empty(dims, at::kComplexFloat);
  Handle mtype = complex_type();
  if (H5Dread(ds.id, mtype.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) < 0)
    throw std::runtime_error(path_ + ": cannot read dataset '" + name + "' as complex64");
  return out;
}

at::Tensor H5File::read_float(const std::string& name) const {
  auto dims = shape(name);
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle ftype(H5Dget_type(ds.id), H5Tclose);
  auto cls = H5Tget_class(ftype.id);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw std::runtime_error(path_ + ": dataset '" + name + "' " + shape_str(dims) +
                             " is not real (expected float or integer values)");
  at::Tensor out = at::empty(dims, at::kFloat);
  if (H5Dread(ds.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) < 0)
    throw std::runtime_error(path_ + ": cannot read dataset '" + name + "' as float32");
  return out;
}

std::optional<std::string> H5File::string_attr(const std::string& name) const {
  if (H5Aexists(id_, name.c_str()) <= 0) return std::nullopt;
  Handle attr(H5Aopen(id_, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.id), H5Tclose);
  if (H5Tget_class(type.id) != H5T_STRING) return std::nullopt;
  if (H5Tis_variable_str(type.id) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));
    char* value = nullptr;
    if (H5Aread(attr.id, mem.id, &value) < 0 || value == nullptr) return std::nullopt;
    std::string out(value);
    H5free_memory(value);
    return out;
  }
  std::string out(H5Tget_size(type.id), '\0');
  if (H5Aread(attr.id, type.id, out.data()) < 0) return std::nullopt;
  return out.substr(0, out.find('\0'));
}

namespace {
void write(hid_t file, const std::string& path, const std::string& name, const at::Tensor& t, hid_t mtype) {
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle ds(H5Dcreate2(file, name.c_str(), mtype, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (ds.id < 0 || H5Dwrite(ds.id, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    throw std::runtime_error(path + ": cannot write dataset '" + name + "'");
}
}  // namespace

void H5File::write_complex(const std::string& name, const at::Tensor& t) {
  Handle mtype = complex_type();
  write(id_, path_, name, t.to(at::kComplexFloat).contiguous(), mtype.id);
}

void H5File::write_float(const std::string& name, const at::Tensor& t) {
  write(id_, path_, name, t.to(at::kFloat).contiguous(), H5T_NATIVE_FLOAT);
}

void H5File::write_string_attr(const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.id, value.empty() ? 1 : value.size());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(id_, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (attr.id < 0 || H5Awrite(attr.id, type.id, value.c_str()) < 0)
    throw std::runtime_error(path_ + ": cannot write attribute '" + name + "'");
}

}  // namespace gleam::infer
