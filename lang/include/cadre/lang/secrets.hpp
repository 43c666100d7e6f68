#pragma once

// Named secrets (config `secrets:`): a tool input names one as
// "{{ secrets.NAME }}"; the tool worker puts the value in just before the
// call, so events, logs and errors keep the reference, never the value.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools {

/// Replaces every occurrence of `secret` in `text` with "[redacted]".
inline std::string scrub(std::string text, std::string_view secret) {
  if (secret.empty())
    return text;
  for (auto pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos))
    text.replace(pos, secret.size(), "[redacted]");
  return text;
}

/// NAME when `expr` (the text between "{{" and "}}") is `secrets.NAME`,
/// with NAME made of letters, digits and `_`; else nullopt.
std::optional<std::string> secret_reference(std::string_view expr);

/// True when `text` holds a "{{ secrets.NAME }}" reference.
bool holds_secret_reference(std::string_view text);

/// The node's secrets by name. Built once at start-up, then shared
/// read-only by every tool worker (thread-safe for reading).
class secret_store {
public:
  /// Adds secret `name` with its value.
  void add(const std::string& name, std::string value);

  /// Adds a secret whose value could not be read (e.g. an unset variable);
  /// a call that uses it fails with `why`.
  void add_unavailable(const std::string& name, std::string why);

  bool contains(const std::string& name) const;

  /// The names, sorted (for messages; names are not secret).
  std::vector<std::string> names() const;

  /// Replaces each "{{ secrets.NAME }}" in the strings at `pointers` (JSON
  /// pointers into `input`, from the workflow's template) with the value.
  /// Strings elsewhere are left alone: a reference that arrives as data
  /// (an execution's input, a model's tool call) is never resolved.
  /// Errors: errc::invalid_input naming an unknown secret or the pointer,
  /// errc::invalid_config when the secret's value could not be read.
  [[nodiscard]] expected<json_value>
  resolve(const json_value& input,
          const std::vector<std::string>& pointers) const;

  /// `text` with every known secret value replaced by "[redacted]". The
  /// one redaction of what leaves a tool worker (errors, outputs); cut a
  /// text only after redacting it, or a value crossing the cut survives.
  std::string redact(std::string text) const;

  /// `err` with its message redacted (same code and category).
  caf::error redact(const caf::error& err) const;

  /// Redacts every string (and key) in `x`.
  void redact(json& x) const;

  bool empty() const noexcept {
    return entries_.empty();
  }

private:
  struct entry {
    std::optional<std::string> value;
    std::string why; ///< when value is unset
  };
  std::map<std::string, entry> entries_;
  /// Known values, longest first, so a value holding another is redacted
  /// whole.
  std::vector<std::string> values_;
};

} // namespace cadre::tools
