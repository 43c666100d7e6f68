#pragma once

// valijson 1.0 (Debian's) runs `pattern`, `patternProperties` and the
// date/time formats through std::regex, whose backtracking recurses once per
// character (a long string overflows the stack) and takes exponential time
// on patterns such as ^(a+)+$. It has no way to plug in another engine, so
// the visitor's three member functions that use std::regex are explicitly
// specialized here for the two adapters cadre validates with (nlohmann JSON,
// and std::string for propertyNames) and run on RE2 (cadre/lang/regex.hpp)
// instead. Everything else in them is valijson's own logic, unchanged.
//
// Include this header in exactly one translation unit (json_schema.cpp),
// right after valijson's headers and before any validation code: an explicit
// specialization must be seen before the member is used, and no other
// translation unit may instantiate these visitors.

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/adapters/std_string_adapter.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validation_visitor.hpp>

#include "cadre/lang/regex.hpp"

namespace cadre::tools::detail {

/// Compiled patterns of one schema, by their text.
using pattern_table = std::unordered_map<std::string, regex>;

/// While it lives, valijson's visitor on this thread looks patterns up in
/// `table` (the schema being validated). Guards nest.
class patterns_in_use {
public:
  explicit patterns_in_use(const pattern_table& table);
  ~patterns_in_use();
  patterns_in_use(const patterns_in_use&) = delete;
  patterns_in_use& operator=(const patterns_in_use&) = delete;

private:
  const pattern_table* previous_;
};

/// True when `pattern` matches somewhere in `text`. The pattern comes from
/// the table in use (compiled when the schema was); one missing there is
/// compiled now, and one RE2 refuses matches nothing (compiling the schema
/// already refused it with its place).
bool pattern_search(const std::string& pattern, const std::string& text);

/// valijson's `pattern` check: on a mismatch, pushes its message to
/// `results` (when given) and returns false.
bool check_pattern(const std::string& pattern, const std::string& text,
                   valijson::ValidationResults* results,
                   const std::vector<std::string>& context);

/// valijson's `date`, `time` and `date-time` checks (other formats pass),
/// with its messages.
bool check_format(const std::string& format, const std::string& text,
                  valijson::ValidationResults* results,
                  const std::vector<std::string>& context);

} // namespace cadre::tools::detail

namespace valijson {

// -- pattern and format ------------------------------------------------------

template <>
inline bool ValidationVisitor<adapters::NlohmannJsonAdapter>::visit(
  const constraints::PatternConstraint& constraint) {
  if ((m_strictTypes && !m_target.isString()) || !m_target.maybeString())
    return true;
  return cadre::tools::detail::check_pattern(
    std::string{constraint.getPattern<std::string::allocator_type>()},
    m_target.asString(), m_results, m_context);
}

template <>
inline bool ValidationVisitor<adapters::StdStringAdapter>::visit(
  const constraints::PatternConstraint& constraint) {
  return cadre::tools::detail::check_pattern(
    std::string{constraint.getPattern<std::string::allocator_type>()},
    m_target.asString(), m_results, m_context);
}

template <>
inline bool ValidationVisitor<adapters::NlohmannJsonAdapter>::visit(
  const constraints::FormatConstraint& constraint) {
  // Formats apply to strings only.
  if ((m_strictTypes && !m_target.isString()) || !m_target.maybeString())
    return true;
  return cadre::tools::detail::check_format(
    constraint.getFormat(), m_target.asString(), m_results, m_context);
}

template <>
inline bool ValidationVisitor<adapters::StdStringAdapter>::visit(
  const constraints::FormatConstraint& constraint) {
  return cadre::tools::detail::check_format(
    constraint.getFormat(), m_target.asString(), m_results, m_context);
}

// -- properties, patternProperties, additionalProperties --------------------

template <>
inline bool ValidationVisitor<adapters::NlohmannJsonAdapter>::visit(
  const constraints::PropertiesConstraint& constraint) {
  using adapter = adapters::NlohmannJsonAdapter;
  if ((m_strictTypes && !m_target.isObject()) || !m_target.maybeObject())
    return true;
  bool validated = true;
  std::set<std::string> propertiesMatched;
  const adapter::Object object = m_target.asObject();
  constraint.applyToProperties(ValidatePropertySubschemas(
    object, m_context, true, m_results != nullptr, true, m_strictTypes,
    m_results, &propertiesMatched, &validated, m_regexesCache));
  if (!validated && !m_results)
    return false;
  // valijson's ValidatePatternPropertySubschemas, on RE2: each property a
  // pattern matches must match its subschema; the first failure stops.
  constraint.applyToPatternProperties(
    [&](const auto& patternProperty, const Subschema* subschema) {
      const std::string pattern(patternProperty.c_str());
      for (const adapter::ObjectMember m : object) {
        if (!cadre::tools::detail::pattern_search(pattern, m.first))
          continue;
        propertiesMatched.insert(m.first);
        std::vector<std::string> newContext = m_context;
        newContext.push_back("[" + m.first + "]");
        ValidationVisitor validator(m.second, newContext, m_strictTypes,
                                    m_results, m_regexesCache);
        if (validator.validateSchema(*subschema))
          continue;
        if (m_results)
          m_results->pushError(m_context, "Failed to validate against schema "
                                          "associated with pattern '"
                                            + pattern + "'.");
        validated = false;
        return false;
      }
      return true;
    });
  const Subschema* additional = constraint.getAdditionalPropertiesSubschema();
  if (!additional) {
    if (propertiesMatched.size() != m_target.getObjectSize()) {
      if (m_results) {
        std::string unwanted;
        for (const adapter::ObjectMember m : object)
          if (propertiesMatched.find(m.first) == propertiesMatched.end()) {
            unwanted = m.first;
            break;
          }
        m_results->pushError(m_context,
                             "Object contains a property that could not be "
                             "validated using 'properties' or "
                             "'additionalProperties' constraints: '"
                               + unwanted + "'.");
      }
      return false;
    }
    return validated;
  }
  for (const adapter::ObjectMember m : object) {
    if (propertiesMatched.find(m.first) != propertiesMatched.end())
      continue;
    std::vector<std::string> newContext = m_context;
    newContext.push_back("[" + m.first + "]");
    ValidationVisitor validator(m.second, newContext, m_strictTypes,
                                m_results, m_regexesCache);
    if (!validator.validateSchema(*additional)) {
      if (m_results)
        m_results->pushError(m_context, "Failed to validate against "
                                        "additional properties schema");
      validated = false;
    }
  }
  return validated;
}

template <>
inline bool ValidationVisitor<adapters::StdStringAdapter>::visit(
  const constraints::PropertiesConstraint&) {
  // A string has no properties (valijson reads "" as an empty object, which
  // every properties constraint accepts).
  return true;
}

} // namespace valijson
