// Reading workflow text: YAML (and JSON, which YAML reads as flow style) to
// a JSON document with the source location of every node, through the one
// bounded YAML reader (cadre/yaml/reader.hpp).

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cadre/workflow/definition.hpp"
#include "document.hpp"

namespace cadre::workflow {

namespace detail {

source_location locations::find(const std::string& pointer, bool key) const {
  auto at = yaml::document::find(pointer, key);
  return {at.line, at.column};
}

json read_yaml(const std::string& text, const std::string& file,
               locations& where, std::vector<diagnostic>& errors) {
  static_cast<yaml::document&>(where) = yaml::read(text);
  for (auto& p : where.problems)
    errors.push_back({file, {p.at.line, p.at.column}, std::move(p.pointer),
                      std::move(p.message)});
  where.problems.clear();
  if (where.empty) {
    errors.push_back({file, {1, 1}, "",
                      "the document is empty; expected a mapping with "
                      "'name' and 'tasks'"});
    return nullptr;
  }
  if (where.second_document.line > 0)
    errors.push_back({file,
                      {where.second_document.line,
                       where.second_document.column},
                      "",
                      "more than one document (---); a file holds one "
                      "workflow"});
  return std::move(where.value);
}

} // namespace detail

namespace {

void sort_by_location(std::vector<diagnostic>& errors) {
  std::stable_sort(errors.begin(), errors.end(),
                   [](const diagnostic& x, const diagnostic& y) {
                     if (x.where.line != y.where.line)
                       return x.where.line < y.where.line;
                     return x.where.column < y.where.column;
                   });
}

} // namespace

parse_result parse_text(const std::string& text, const std::string& file,
                        const validation_context& ctx) {
  detail::locations where;
  std::vector<diagnostic> errors;
  auto doc = detail::read_yaml(text, file, where, errors);
  parse_result result;
  if (!doc.is_null() || errors.empty())
    result = detail::validate(doc, file, &where, ctx);
  // A value the reader refused (e.g. a number out of range) is null to the
  // validator; its complaint about that null would only confuse.
  auto reader_errors = errors.size();
  for (auto& d : result.errors) {
    bool explained = std::any_of(
      errors.begin(), errors.begin() + static_cast<ptrdiff_t>(reader_errors),
      [&](const diagnostic& r) {
        return !r.pointer.empty() && r.pointer == d.pointer;
      });
    if (!explained)
      errors.push_back(std::move(d));
  }
  sort_by_location(errors);
  result.errors = std::move(errors);
  if (!result.errors.empty())
    result.def.reset();
  return result;
}

parse_result parse_file(const std::string& path,
                        const validation_context& ctx) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    parse_result result;
    result.errors.push_back(
      {path, {}, "", std::string{"cannot open the file: "}
                       + std::strerror(errno)});
    return result;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_text(buf.str(), path, ctx);
}

parse_result parse_document(const json& doc, const validation_context& ctx) {
  return detail::validate(doc, "", nullptr, ctx);
}

expected<definition> load_document(const json& doc) {
  auto parsed = parse_document(doc, validation_context{});
  if (!parsed.def) {
    std::string msg = "invalid workflow";
    for (auto& d : parsed.errors)
      msg += "\n  " + d.to_string();
    return make_error(errc::invalid_workflow, std::move(msg));
  }
  return std::move(*parsed.def);
}

} // namespace cadre::workflow
