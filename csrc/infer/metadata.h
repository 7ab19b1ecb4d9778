// The metadata gleam-export stores in an artifact (a JSON object; see gleam_core/recon/export.py),
// reduced to what gleam-infer needs.
#pragma once

#include <string>
#include <vector>

namespace gleam::infer {

struct Metadata {
  std::string kind;       // "2d", "3d" or "cine"
  std::string axes;       // spatial axis letters: "HW", "DHW" or "THW"
  std::string mask_axes;  // the axes the exported model's mask varies along, e.g. "W"
  std::vector<std::string> ops;  // the gleam:: ops its graph calls, e.g. "gleam::sense_adjoint"
};

// Reads the top-level keys kind, mask_axes and ops of the JSON ``text``; throws
// std::runtime_error naming ``source`` when they are missing or malformed.
Metadata parse_metadata(const std::string& text, const std::string& source);

}  // namespace gleam::infer
