#include "infer/metadata.h"

#include <cctype>
#include <map>
#include <stdexcept>

namespace gleam::infer {
namespace {

// Just enough JSON: the top-level object's string and string-array values; nested values
// (the spec, the architecture) are skipped.
class Reader {
 public:
  Reader(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  void top(std::map<std::string, std::string>& strings, std::map<std::string, std::vector<std::string>>& lists) {
    expect('{');
    if (peek() == '}') return;
    while (true) {
      std::string key = string();
      expect(':');
      char c = peek();
      if (c == '"') {
        strings[key] = string();
      } else if (c == '[' && is_string_list()) {
        std::vector<std::string> items;
        expect('[');
        while (peek() != ']') {
          items.push_back(string());
          if (peek() == ',') ++i_;
        }
        expect(']');
        lists[key] = items;
      } else {
        skip_value();
      }
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      return;
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error(source_ + ": malformed gleam metadata (" + why + " at character " + std::to_string(i_) +
                             ")");
  }
  char peek() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;  // escapes: keep the escaped character
      out += s_[i_++];
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
  bool is_string_list() {
    size_t j = i_ + 1;
    while (j < s_.size() && std::isspace(static_cast<unsigned char>(s_[j]))) ++j;
    return j < s_.size() && (s_[j] == '"' || s_[j] == ']');
  }
  void skip_value() {  // an object, array, number, true, false or null
    int depth = 0;
    while (true) {
      char c = peek();
      if (c == '"') {
        string();
      } else if (c == '{' || c == '[') {
        ++depth, ++i_;
      } else if (c == '}' || c == ']') {
        if (depth == 0) return;
        --depth, ++i_;
      } else if (c == ',' && depth == 0) {
        return;
      } else {
        ++i_;
      }
      if (depth == 0 && (peek() == ',' || peek() == '}')) return;
    }
  }

  const std::string& s_;
  const std::string& source_;
  size_t i_ = 0;
};

}  // namespace

Metadata parse_metadata(const std::string& text, const std::string& source) {
  std::map<std::string, std::string> strings;
  std::map<std::string, std::vector<std::string>> lists;
  Reader(text, source).top(strings, lists);
  Metadata m;
  m.kind = strings["kind"];
  if (m.kind != "2d" && m.kind != "3d" && m.kind != "cine")
    throw std::runtime_error(source + ": metadata kind is '" + m.kind + "', expected 2d, 3d or cine");
  m.axes = m.kind == "2d" ? "HW" : m.kind == "3d" ? "DHW" : "THW";
  m.mask_axes = strings["mask_axes"];
  if (m.mask_axes.empty() || m.mask_axes.find_first_not_of(m.axes) != std::string::npos)
    throw std::runtime_error(source + ": metadata mask_axes is '" + m.mask_axes + "', expected letters of " + m.axes);
  m.ops = lists["ops"];
  return m;
}

}  // namespace gleam::infer
