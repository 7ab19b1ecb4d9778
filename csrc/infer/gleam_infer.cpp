// gleam-infer: runs an exported GLEAM network (gleam-export: pt2 or TorchScript) on a k-space
// file of our HDF5 formats and writes the reconstruction, with libtorch and libgleam_ops only.
//
//   gleam-infer --model MODEL --in FILE --out FILE [--ops-lib PATH|none] [--maps SIDECAR]
//               [--batch-size N] [--threads N] [--repeat N]
//
// Inputs (files acquired undersampled: they carry their mask; k-space in file units):
//   fastMRI (2d models): kspace (N, C, H, W), mask (W,), maps (N, C, M, H, W) in the file or in
//                        the sidecar <stem>.maps.h5 (gleam-data maps) or --maps;
//   vol3d   (3d models): kspace (C, D, H, W), maps (C, M, D, H, W), mask (H, W);
//   cine    (cine):      kspace (T, C, H, W), maps (C, M, H, W), mask (T, W) or (T, H, W).
// Output: "image" complex64 (N, M, H, W) for 2d, (M, *S) otherwise, and "reconstruction"
// float32, its root-sum-of-squares over M ((N, H, W) or S), like gleam-recon's (uncropped).
// Exit status: 0 done, 2 bad arguments, model or data (one line on stderr says why).

#include "infer/h5io.h"
#include "infer/metadata.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using gleam::infer::H5File;
using gleam::infer::Metadata;

namespace {

struct Args {
  std::string model, in, out, maps, ops_lib;
  int64_t batch_size = 1, threads = 0, repeat = 1;
};

[[noreturn]] void usage(const std::string& why) {
  throw std::invalid_argument(why + "\nusage: gleam-infer --model MODEL(.pt2|.pt) --in FILE.h5 --out FILE.h5 "
                              "[--ops-lib PATH|none] [--maps SIDECAR.h5] [--batch-size N] [--threads N] [--repeat N]");
}

int64_t positive(const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    int64_t n = std::stoll(v, &used);
    if (used == v.size() && n >= 1) return n;
  } catch (const std::exception&) {
  }
  usage(key + ": expected a positive integer, got '" + v + "'");
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("gleam-infer: reconstruct an HDF5 k-space file with an exported network");
    if (i + 1 >= argc) usage(k + ": missing value");
    std::string v = argv[++i];
    if (k == "--model") a.model = v;
    else if (k == "--in") a.in = v;
    else if (k == "--out") a.out = v;
    else if (k == "--maps") a.maps = v;
    else if (k == "--ops-lib") a.ops_lib = v;
    else if (k == "--batch-size") a.batch_size = positive(k, v);
    else if (k == "--threads") a.threads = positive(k, v);
    else if (k == "--repeat") a.repeat = positive(k, v);
    else usage("unknown argument '" + k + "'");
  }
  if (a.model.empty() || a.in.empty() || a.out.empty()) usage("--model, --in and --out are required");
  return a;
}

// The ops library: --ops-lib, else $GLEAM_OPS_LIB, else libgleam_ops.so next to this program.
std::string load_ops(const std::string& requested) {
  std::string path = requested;
  if (path.empty()) {
    const char* env = std::getenv("GLEAM_OPS_LIB");
    path = env ? env : (fs::canonical("/proc/self/exe").parent_path() / "libgleam_ops.so").string();
  }
  if (path == "none") return "none";
  // RTLD_GLOBAL: the library's static TORCH_LIBRARY initializers register the gleam:: ops with
  // the dispatcher of the libtorch this program already loaded.
  if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char* err = dlerror();
    throw std::runtime_error("cannot load the gleam ops library " + path + ": " + (err ? err : "unknown error"));
  }
  return path;
}

// Refuses, with the reason, a model whose gleam:: ops are not registered (running it would
// fail inside libtorch with a far less helpful message).
void check_ops(const Metadata& meta, const std::string& ops_lib) {
  std::vector<std::string> missing;
  for (const auto& op : meta.ops)
    if (!c10::Dispatcher::singleton().findSchema({op, ""}).has_value()) missing.push_back(op);
  if (missing.empty()) return;
  std::string list;
  for (const auto& op : missing) list += (list.empty() ? "" : ", ") + op;
  throw std::runtime_error("the model calls " + list + ", which no loaded library registers (ops library: " +
                           ops_lib + "); pass --ops-lib /path/to/libgleam_ops.so (built with -DGLEAM_BUILD_INFER=ON)");
}

// An exported model: AOTInductor package or TorchScript module, called with (kspace, maps, mask).
class Model {
 public:
  Model(const std::string& path, const std::string& ops_lib) {
    if (!fs::is_regular_file(path)) throw std::runtime_error(path + ": no such model file");
    pt2_ = path.size() >= 4 && path.compare(path.size() - 4, 4, ".pt2") == 0;
    std::string text;
    if (pt2_) {
      auto all = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
      auto it = all.find("gleam");
      if (it == all.end()) throw std::runtime_error(path + ": not a gleam-export package (no 'gleam' metadata)");
      text = it->second;
    } else {
      text = read_torchscript_metadata(path);
    }
    meta_ = gleam::infer::parse_metadata(text, path);
    check_ops(meta_, ops_lib);
    if (pt2_) {
      aoti_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", /*run_single_threaded=*/true);
    } else {
      ts_ = std::make_unique<torch::jit::Module>(torch::jit::load(path));
      ts_->eval();
    }
  }

  const Metadata& meta() const { return meta_; }

  at::Tensor operator()(const at::Tensor& kspace, const at::Tensor& maps, const at::Tensor& mask) {
    c10::InferenceMode guard;
    if (pt2_) return aoti_->run({kspace, maps, mask}).at(0);
    return ts_->forward({kspace, maps, mask}).toTensor();
  }

 private:
  static std::string read_torchscript_metadata(const std::string& path) {
    // Straight from the archive, without compiling the graph (which fails without the ops).
    std::string text;
    try {
      caffe2::serialize::PyTorchStreamReader reader(path);
      if (reader.hasRecord("extra/gleam.json")) {
        auto [data, size] = reader.getRecord("extra/gleam.json");
        text.assign(static_cast<const char*>(data.get()), size);
      }
    } catch (const c10::Error&) {
      throw std::runtime_error(path + ": not a TorchScript archive (or truncated)");
    }
    if (text.empty()) throw std::runtime_error(path + ": not a gleam-export TorchScript file (no gleam.json inside)");
    return text;
  }

  bool pt2_ = false;
  Metadata meta_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti_;
  std::unique_ptr<torch::jit::Module> ts_;
};

// The file's k-space, maps and mask as the model takes them: (N, C, *S), (N, C, M, *S') and the
// mask in the export's layout (1, 1, *S'') (N = slices for fastMRI files, else 1).
struct Inputs {
  at::Tensor kspace, maps, mask;
};

std::string format_of(const H5File& f) {
  auto fmt = f.string_attr("gleam_format");
  return fmt ? *fmt : "fastmri";
}

void expect_dims(const H5File& f, const std::string& name, const at::Tensor& t, std::vector<int64_t> ndims,
                 const std::string& layout) {
  if (std::find(ndims.begin(), ndims.end(), t.dim()) == ndims.end())
    throw std::runtime_error(f.path() + ": dataset '" + name + "' has shape " + c10::str(t.sizes()) + ", expected " +
                             layout);
}

Inputs read_inputs(const H5File& f, const Metadata& meta, const std::string& maps_path) {
  const std::string fmt = format_of(f);
  const std::string wanted = meta.kind == "2d" ? "fastmri" : meta.kind == "3d" ? "vol3d" : "cine";
  if (fmt != wanted)
    throw std::runtime_error(f.path() + ": a " + fmt + " file, but the model reconstructs " + meta.kind +
                             " data (" + wanted + " files)");
  if (!f.has("mask"))
    throw std::runtime_error(f.path() + ": no 'mask' dataset; gleam-infer reconstructs files acquired undersampled "
                             "(k-space with its mask), while fully sampled files are for training and gleam-recon");
  Inputs in;
  at::Tensor kspace = f.read_complex("kspace");
  at::Tensor mask = f.read_float("mask");
  if (fmt == "fastmri") {
    expect_dims(f, "kspace", kspace, {4}, "(slices, C, H, W)");
    expect_dims(f, "mask", mask, {1}, "(W,)");
    std::string side = maps_path;
    if (side.empty() && !f.has("maps")) side = (fs::path(f.path()).parent_path() /
                                                (fs::path(f.path()).stem().string() + ".maps.h5")).string();
    at::Tensor maps = side.empty() ? f.read_complex("maps") : H5File::open_read(side).read_complex("maps");
    in = {kspace, maps, mask.reshape({1, 1, 1, -1})};
  } else if (fmt == "vol3d") {
    expect_dims(f, "kspace", kspace, {4}, "(C, D, H, W)");
    expect_dims(f, "mask", mask, {2}, "(H, W)");
    in = {kspace.unsqueeze(0), f.read_complex("maps").unsqueeze(0), mask.reshape({1, 1, 1, mask.size(0), mask.size(1)})};
  } else {
    expect_dims(f, "kspace", kspace, {4}, "(T, C, H, W)");
    expect_dims(f, "mask", mask, {2, 3}, "(T, W) or (T, H, W)");
    at::Tensor maps = f.read_complex("maps");
    if (maps.dim() == 4) maps = maps.unsqueeze(2);  // shared by all frames
    mask = mask.dim() == 2 ? mask.reshape({1, 1, mask.size(0), 1, mask.size(1)}) : mask.unsqueeze(0).unsqueeze(0);
    in = {kspace.transpose(0, 1).unsqueeze(0).contiguous(), maps.unsqueeze(0), mask};
  }
  const int64_t spatial = meta.kind == "2d" ? 2 : 3;
  if (in.maps.dim() != 3 + spatial || in.maps.size(1) != in.kspace.size(1))
    throw std::runtime_error(f.path() + ": maps " + c10::str(in.maps.sizes()) + " do not fit k-space " +
                             c10::str(in.kspace.sizes()) + " (expected the same coils and spatial shape)");
  if (meta.kind == "2d" && in.maps.size(0) != in.kspace.size(0))
    throw std::runtime_error(f.path() + ": maps have " + std::to_string(in.maps.size(0)) + " slices, k-space " +
                             std::to_string(in.kspace.size(0)));
  // The mask in the export's layout: size 1 where the model expects it constant.
  for (int64_t a = 0; a < spatial; ++a) {
    const int64_t d = 2 + a, n = in.kspace.size(d);
    const bool varies = meta.mask_axes.find(meta.axes[a]) != std::string::npos;
    at::Tensor& m = in.mask;
    if (m.size(d) != 1 && m.size(d) != n)
      throw std::runtime_error(f.path() + ": mask " + c10::str(m.sizes()) + " does not fit k-space " +
                               c10::str(in.kspace.sizes()));
    if (varies && m.size(d) == 1) {
      std::vector<int64_t> size(m.sizes().begin(), m.sizes().end());
      size[d] = n;
      m = m.expand(size).contiguous();
    } else if (!varies && m.size(d) != 1) {
      at::Tensor first = m.narrow(d, 0, 1);
      if (!at::equal(m, first.expand_as(m)))
        throw std::runtime_error(f.path() + ": the mask varies along " + std::string(1, meta.axes[a]) +
                                 ", but the model was exported for masks varying along " + meta.mask_axes +
                                 " only; export again with gleam-export --mask-axes");
      m = first.contiguous();
    }
  }
  return in;
}

// Writes next to the target, then renames: readers never see a partial file.
void write_output(const std::string& path, const at::Tensor& image, const std::string& model, const Metadata& meta) {
  fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::string tmp = (target.parent_path() / ("." + target.filename().string() + "." +
                                             std::to_string(::getpid()) + ".tmp")).string();
  try {
    {
      H5File out = H5File::create(tmp);
      out.write_complex("image", image);
      out.write_float("reconstruction", image.abs().square().sum(meta.kind == "2d" ? 1 : 0).sqrt());
      out.write_string_attr("model", model);
      out.write_string_attr("kind", meta.kind);
    }
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Args& args) {
  if (args.threads > 0) at::set_num_threads(static_cast<int>(args.threads));
  auto t0 = std::chrono::steady_clock::now();
  const std::string ops = load_ops(args.ops_lib);
  Model model(args.model, ops);
  const double load_ms = ms_since(t0);
  const Metadata& meta = model.meta();
  H5File file = H5File::open_read(args.in);
  Inputs in = read_inputs(file, meta, args.maps);
  const int64_t items = in.kspace.size(0);
  std::vector<at::Tensor> parts;
  double best_ms = 0;
  for (int64_t r = 0; r < args.repeat; ++r) {  // --repeat: timing; every pass computes the same result
    parts.clear();
    auto t1 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < items; s += args.batch_size) {
      const int64_t b = std::min(args.batch_size, items - s);
      at::Tensor mask = in.mask;
      parts.push_back(model(in.kspace.narrow(0, s, b).contiguous(), in.maps.narrow(0, s, b).contiguous(), mask));
    }
    const double ms = ms_since(t1);
    best_ms = r == 0 ? ms : std::min(best_ms, ms);
  }
  at::Tensor image = at::cat(parts, 0);
  if (meta.kind != "2d") image = image.squeeze(0);
  write_output(args.out, image, args.model, meta);
  std::printf("gleam-infer: %s -> %s: %lld item(s) of %s data, %.2f ms per item (best of %lld), model load %.0f ms\n",
              args.in.c_str(), args.out.c_str(), static_cast<long long>(items), meta.kind.c_str(),
              best_ms / static_cast<double>(items), static_cast<long long>(args.repeat), load_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "gleam-infer: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "gleam-infer: error: %s\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gleam-infer: error: %s\n", e.what());
    return 2;
  }
}
