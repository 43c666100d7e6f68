#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"

namespace cadre::tools {

/// A regular expression that matches in time linear in the text, without
/// recursion and within a bounded amount of memory (RE2), so it may see
/// untrusted text of any length. Every regular expression that sees input
/// (JSON Schema `pattern`, `patternProperties` and `format`, the scripted
/// model's `match`, the HTTP routes) is one of these.
///
/// The syntax is RE2's: that of ECMAScript and Perl without backreferences
/// (`\1`) and lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`), which cannot run in
/// linear time. Text and pattern are UTF-8; `.` does not match a newline;
/// `^` and `$` are the start and end of the text.
///
/// Immutable once compiled; copies share the compiled program; any thread
/// may use one.
class regex {
public:
  /// Compiles `pattern`. Errors: errc::invalid_input saying what RE2
  /// refused (and that lookaround and backreferences are not supported
  /// when that is the reason), or that the pattern is too large.
  [[nodiscard]] static expected<regex> compile(std::string_view pattern);

  /// True when the pattern matches somewhere in `text` (JSON Schema's
  /// `pattern` semantics).
  bool search(std::string_view text) const;

  /// True when the pattern matches the whole of `text`.
  bool full_match(std::string_view text) const;

  /// The pattern as written.
  const std::string& pattern() const;

  /// A regex that was not compiled: matches nothing.
  regex() = default;

  struct impl;

private:
  explicit regex(std::shared_ptr<const impl> ptr);

  std::shared_ptr<const impl> impl_;
};

} // namespace cadre::tools
