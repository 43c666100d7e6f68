// Regular expressions on RE2: linear in the text, no recursion, bounded
// memory; the only regex engine that sees input.

#include "cadre/lang/regex.hpp"

#include <re2/re2.h>

namespace cadre::tools {

struct regex::impl {
  explicit impl(std::string_view pattern, const RE2::Options& opts)
    : text(pattern), re(re2::StringPiece{pattern.data(), pattern.size()},
                        opts) {
  }
  std::string text;
  RE2 re;
};

namespace {

// The memory one compiled pattern may take (RE2's default); a larger
// pattern is refused at compile time, and a match that would need more
// falls back to RE2's slower, still linear, engine.
constexpr int64_t max_program_memory = 8 << 20;

RE2::Options options() {
  RE2::Options opts;
  // Library code does not print: RE2 would log a refused pattern.
  opts.set_log_errors(false);
  opts.set_max_mem(max_program_memory);
  return opts;
}

std::string why(const RE2& re) {
  const auto& arg = re.error_arg();
  bool backreference = re.error_code() == RE2::ErrorBadEscape
                       && arg.size() > 1 && arg[1] >= '1' && arg[1] <= '9';
  if (re.error_code() == RE2::ErrorBadPerlOp || backreference)
    return re.error()
           + " (lookaround and backreferences are not supported: patterns "
             "run on RE2, in time linear in the text)";
  if (re.error_code() == RE2::ErrorPatternTooLarge)
    return "the pattern is too large (" + re.error() + ")";
  return re.error();
}

} // namespace

regex::regex(std::shared_ptr<const impl> ptr) : impl_(std::move(ptr)) {
}

expected<regex> regex::compile(std::string_view pattern) {
  auto ptr = std::make_shared<const impl>(pattern, options());
  if (!ptr->re.ok())
    return make_error(errc::invalid_input,
                      "not a supported regular expression: " + why(ptr->re));
  return regex{std::move(ptr)};
}

bool regex::search(std::string_view text) const {
  return impl_
         && RE2::PartialMatch(re2::StringPiece{text.data(), text.size()},
                              impl_->re);
}

bool regex::full_match(std::string_view text) const {
  return impl_
         && RE2::FullMatch(re2::StringPiece{text.data(), text.size()},
                           impl_->re);
}

const std::string& regex::pattern() const {
  static const std::string none;
  return impl_ ? impl_->text : none;
}

} // namespace cadre::tools
