// ocr: reads the text of PNG, JPEG, TIFF (multi-page) and PDF documents with
// Tesseract; PDF pages are rendered by poppler-cpp. Each instance keeps one
// Tesseract engine for its life. Multi-page documents split into page ranges
// that a pool runs on several workers, then join into one output; the parts
// share the one decoded document of the call.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include <leptonica/allheaders.h>
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-global.h>
#include <poppler/cpp/poppler-image.h>
#include <poppler/cpp/poppler-page-renderer.h>
#include <poppler/cpp/poppler-page.h>
#include <tesseract/baseapi.h>
#include <tesseract/ocrclass.h>
#include <tesseract/resultiterator.h>
#include <zlib.h>

#include "cadre/tools/tool.hpp"
#include "codec/base64.hpp"
#include "fs/root_dir.hpp"
#include "ocr/ocr_parts.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

/// Pixels of one page, decoded or rendered, past which a page is refused:
/// about 150 MB at 8 bits, 600 MB at 32.
constexpr double max_page_pixels = 150e6;

namespace fs = std::filesystem;

constexpr const char* tool_name = "ocr";

/// Settings of the ocr tool (`tools.ocr`).
struct ocr_options {
  /// Directory that `path` inputs must resolve inside (after `..` and
  /// symlinks). Default: the current directory
  std::string root = ".";
  /// Tesseract languages used when a call names none. Default: ["eng"]
  std::vector<std::string> languages{"eng"};
  /// Resolution PDF pages are rendered at, and the one assumed for images
  /// that do not record theirs, in dots per inch. Default: 300
  uint64_t dpi = 300;
  /// Directory of the *.traineddata files. Default: the packaged one
  /// (/usr/share/tesseract-ocr/5/tessdata on Debian 12)
  std::string tessdata;
  /// Most pages one call may read. Default: 200
  uint64_t max_pages = 200;
  /// Largest document one call may read, in bytes (decoded, for base64).
  /// Default: 64 MiB
  uint64_t max_input_bytes = 64ull << 20;
  /// Pages per part when a pool fans a document out across its workers;
  /// 0 never splits. Default: 1
  uint64_t pages_per_part = 1;
};

// Leptonica and poppler write to stderr on bad input; cadre reports errors
// itself. Both switches are process-wide.
void silence_libraries() {
  static std::once_flag once;
  std::call_once(once, [] {
    setMsgSeverity(L_SEVERITY_NONE);
    // libtiff's messages come through Leptonica's handler.
    leptSetStderrHandler([](const char*) {});
    poppler::set_debug_error_function([](const std::string&, void*) {},
                                      nullptr);
  });
}

// The tessdata directory Debian's and upstream's packages install.
std::string default_tessdata() {
  for (const char* dir :
       {"/usr/share/tesseract-ocr/5/tessdata",
        "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata",
        "/usr/local/share/tessdata"}) {
    std::error_code ec;
    if (fs::is_directory(dir, ec))
      return dir;
  }
  return "/usr/share/tesseract-ocr/5/tessdata";
}

bool valid_language_name(const std::string& x) {
  if (x.empty() || x.size() > 64)
    return false;
  return std::all_of(x.begin(), x.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// -- input --------------------------------------------------------------------

enum class doc_format { png, jpeg, tiff, pdf };

const char* format_name(doc_format f) {
  switch (f) {
    case doc_format::png:
      return "PNG";
    case doc_format::jpeg:
      return "JPEG";
    case doc_format::tiff:
      return "TIFF";
    case doc_format::pdf:
      return "PDF";
  }
  return "?";
}

// The bytes of a document and where they came from (a JSON pointer). The
// bytes are immutable and shared by the parts of a split call.
struct source {
  std::shared_ptr<const std::string> bytes;
  std::string where;
  doc_format format = doc_format::png;
};

std::optional<doc_format> sniff(const std::string& b) {
  auto starts = [&](std::string_view magic) {
    return b.size() >= magic.size()
           && std::string_view{b}.substr(0, magic.size()) == magic;
  };
  if (starts("\x89PNG\r\n\x1a\n"))
    return doc_format::png;
  if (starts("\xff\xd8\xff"))
    return doc_format::jpeg;
  if (starts("II*\0") || starts("MM\0*"))
    return doc_format::tiff;
  // PDF allows up to 1024 bytes of junk before the header.
  if (b.substr(0, 1024).find("%PDF-") != std::string::npos)
    return doc_format::pdf;
  return std::nullopt;
}

// libpng and libjpeg, called by Leptonica with their default handlers,
// print to stderr on a damaged file; these checks refuse the usual damage
// (truncation, bit flips) first.

uint32_t be32(const std::string& b, size_t i) {
  auto u = [&](size_t k) { return static_cast<uint32_t>(
                             static_cast<uint8_t>(b[i + k])); };
  return (u(0) << 24) | (u(1) << 16) | (u(2) << 8) | u(3);
}

// Walks the chunks of a PNG and checks their CRCs.
std::optional<std::string> png_damage(const std::string& b) {
  size_t i = 8;
  for (bool first = true;; first = false) {
    if (b.size() < i + 12)
      return "truncated";
    auto len = be32(b, i);
    if (len > b.size() - i - 12)
      return "truncated";
    auto type = b.substr(i + 4, 4);
    if (first && type != "IHDR")
      return "corrupt (no IHDR chunk)";
    auto crc = crc32(crc32(0, nullptr, 0),
                     reinterpret_cast<const Bytef*>(b.data() + i + 4),
                     static_cast<uInt>(len + 4));
    if (crc != be32(b, i + 8 + len))
      return "corrupt (bad checksum in the " + type + " chunk)";
    if (type == "IEND")
      return std::nullopt;
    i += 12 + len;
  }
}

// Walks a JPEG's segments to its first scan and looks for the end marker
// after it (markers cannot occur inside the byte-stuffed scan data).
std::optional<std::string> jpeg_damage(const std::string& b) {
  size_t i = 2;
  for (;;) {
    if (b.size() < i + 4 || static_cast<uint8_t>(b[i]) != 0xFF)
      return "truncated or corrupt";
    auto marker = static_cast<uint8_t>(b[i + 1]);
    if (marker == 0xFF) { // fill byte
      ++i;
      continue;
    }
    auto len = (static_cast<size_t>(static_cast<uint8_t>(b[i + 2])) << 8)
               | static_cast<uint8_t>(b[i + 3]);
    if (len < 2)
      return "corrupt";
    i += 2 + len;
    if (marker == 0xDA)
      break;
  }
  if (i > b.size() || b.find("\xff\xd9", i) == std::string::npos)
    return "truncated (no end of image marker)";
  return std::nullopt;
}

// -- page selection -----------------------------------------------------------

// Parses `pages`: an array of page numbers (1-based) or a string of numbers
// and ranges ("1-3,5,8-"). Returns the sorted, distinct pages within
// [1, count]; pages past the end are an error.
expected<std::vector<uint32_t>> select_pages(const json* sel, uint32_t count) {
  std::set<uint32_t> out;
  auto add = [&](uint64_t first, uint64_t last) -> expected<void> {
    if (first < 1 || first > last)
      return detail::input_error(tool_name, "/pages",
                                 "page ranges must be increasing from 1");
    auto past = first > count ? first : last;
    if (past > count && (past != UINT64_MAX || first > count))
      return detail::input_error(tool_name, "/pages",
                                 "page " + std::to_string(past)
                                   + " is out of range (the document has "
                                   + std::to_string(count) + " page"
                                   + (count == 1 ? "" : "s") + ")");
    for (auto p = first; p <= std::min<uint64_t>(last, count); ++p)
      out.insert(static_cast<uint32_t>(p));
    return {};
  };
  if (sel == nullptr || sel->is_null()) {
    if (auto ok = add(1, count); !ok)
      return std::move(ok.error());
  } else if (sel->is_array()) {
    for (size_t i = 0; i < sel->size(); ++i) {
      auto p = detail::as_uint((*sel)[i]);
      if (!p || *p == 0)
        return detail::input_error(tool_name,
                                   "/pages/" + std::to_string(i),
                                   "must be a page number >= 1");
      if (auto ok = add(*p, *p); !ok)
        return std::move(ok.error());
    }
  } else if (sel->is_string()) {
    auto text = sel->get<std::string>();
    size_t pos = 0;
    auto bad = [&] {
      return detail::input_error(tool_name, "/pages",
                                 "must look like \"1-3,5,8-\" (got \""
                                   + text + "\")");
    };
    auto number = [&](uint64_t& x) {
      size_t start = pos;
      x = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9'
             && pos - start < 9)
        x = x * 10 + static_cast<uint64_t>(text[pos++] - '0');
      return pos > start;
    };
    while (pos < text.size()) {
      uint64_t first = 0;
      if (!number(first))
        return bad();
      uint64_t last = first;
      if (pos < text.size() && text[pos] == '-') {
        ++pos;
        if (pos == text.size() || text[pos] == ',')
          last = UINT64_MAX; // "8-": to the end
        else if (!number(last))
          return bad();
      }
      if (auto ok = add(first, last); !ok)
        return std::move(ok.error());
      if (pos < text.size()) {
        if (text[pos] != ',')
          return bad();
        ++pos;
      }
    }
  } else {
    return detail::input_error(tool_name, "/pages",
                               "must be an array of page numbers or a "
                               "string such as \"1-3,5\"");
  }
  if (out.empty())
    return detail::input_error(tool_name, "/pages", "selects no page");
  return std::vector<uint32_t>{out.begin(), out.end()};
}

// -- documents ----------------------------------------------------------------

struct pix_deleter {
  void operator()(Pix* p) const {
    pixDestroy(&p);
  }
};
using pix_ptr = std::unique_ptr<Pix, pix_deleter>;

// An 8-bit page image ready for Tesseract, from Leptonica or poppler.
struct page_image {
  pix_ptr pix;                 // images
  poppler::image rendered;     // PDF pages
  int dpi = 0;                 // 0: unknown
};

// A document opened for reading pages.
class document {
public:
  static expected<document> open(source src) {
    document d;
    d.src_ = std::move(src);
    const auto& b = *d.src_.bytes;
    auto bad = [&](const std::string& what) {
      return detail::input_error(tool_name, d.src_.where,
                                 std::string{"cannot read the "}
                                   + format_name(d.src_.format)
                                   + " document: " + what);
    };
    switch (d.src_.format) {
      case doc_format::png:
      case doc_format::jpeg: {
        auto damage = d.src_.format == doc_format::png ? png_damage(b)
                                                       : jpeg_damage(b);
        if (damage)
          return bad(*damage);
        d.pages_ = 1;
        break;
      }
      case doc_format::tiff: {
        // tiffGetCount wants a FILE; read the bytes through one (read-only:
        // the cast does not let it write).
        auto* f = fmemopen(const_cast<char*>(b.data()), b.size(), "rb");
        if (f == nullptr)
          return bad("out of memory");
        l_int32 n = 0;
        auto rc = tiffGetCount(f, &n);
        std::fclose(f);
        if (rc != 0 || n <= 0)
          return bad("corrupt or truncated");
        d.pages_ = static_cast<uint32_t>(n);
        break;
      }
      case doc_format::pdf: {
        if (b.size() > static_cast<size_t>(INT32_MAX))
          return bad("too large");
        d.pdf_.reset(poppler::document::load_from_raw_data(
          b.data(), static_cast<int>(b.size())));
        if (!d.pdf_)
          return bad("corrupt or truncated");
        if (d.pdf_->is_locked())
          return bad("encrypted (a password is needed)");
        if (d.pdf_->pages() <= 0)
          return bad("it has no pages");
        d.pages_ = static_cast<uint32_t>(d.pdf_->pages());
        break;
      }
    }
    return d;
  }

  uint32_t pages() const {
    return pages_;
  }

  const std::string& where() const {
    return src_.where;
  }

  // Decodes or renders page `n` (1-based).
  expected<page_image> page(uint32_t n, uint64_t dpi) {
    page_image out;
    const auto& b = *src_.bytes;
    auto data = reinterpret_cast<const l_uint8*>(b.data());
    auto bad = [&](const std::string& what) {
      return make_error(errc::invalid_input,
                        std::string{"tool ocr: "} + src_.where + ": page "
                          + std::to_string(n) + ": " + what);
    };
    if (src_.format == doc_format::pdf) {
      std::unique_ptr<poppler::page> p{
        pdf_->create_page(static_cast<int>(n - 1))};
      if (!p)
        return bad("cannot read the PDF page");
      auto box = p->page_rect(poppler::media_box);
      // Refuse pages that would not fit in memory at this resolution.
      double w = box.width() / 72.0 * static_cast<double>(dpi);
      double h = box.height() / 72.0 * static_cast<double>(dpi);
      if (!(w * h < max_page_pixels))
        return bad("too large to render at " + std::to_string(dpi)
                   + " dpi; ask for a lower dpi");
      poppler::page_renderer r;
      r.set_render_hint(poppler::page_renderer::antialiasing);
      r.set_render_hint(poppler::page_renderer::text_antialiasing);
      r.set_image_format(poppler::image::format_gray8);
      auto d = static_cast<double>(dpi);
      out.rendered = r.render_page(p.get(), d, d);
      if (!out.rendered.is_valid() || out.rendered.width() <= 0
          || out.rendered.height() <= 0)
        return bad("cannot render the PDF page");
      out.dpi = static_cast<int>(dpi);
      return out;
    }
    // The size from the header, before decoding: a small compressed file
    // can hold an image that decodes to gigabytes.
    l_int32 w = 0, h = 0, bps = 0, spp = 0, res = 0, cmap = 0, fmt = 0;
    auto header
      = src_.format == doc_format::tiff
          ? readHeaderMemTiff(data, b.size(), static_cast<l_int32>(n - 1), &w,
                              &h, &bps, &spp, &res, &cmap, &fmt)
          : pixReadHeaderMem(data, b.size(), &fmt, &w, &h, &bps, &spp, &cmap);
    if (header != 0 || w <= 0 || h <= 0)
      return bad(std::string{"cannot read the "} + format_name(src_.format)
                 + " image header (corrupt or truncated)");
    if (!(static_cast<double>(w) * static_cast<double>(h) < max_page_pixels))
      return bad("image too large: " + std::to_string(w) + " x "
                 + std::to_string(h) + " pixels (at most "
                 + std::to_string(static_cast<uint64_t>(max_page_pixels))
                 + ")");
    Pix* pix = nullptr;
    if (src_.format == doc_format::tiff)
      pix = pixReadMemTiff(data, b.size(), static_cast<l_int32>(n - 1));
    else
      pix = pixReadMem(data, b.size());
    if (pix == nullptr)
      return bad(std::string{"cannot decode the "} + format_name(src_.format)
                 + " image (corrupt or truncated)");
    out.pix.reset(pix);
    if (static_cast<double>(pixGetWidth(pix))
          * static_cast<double>(pixGetHeight(pix))
        >= max_page_pixels)
      return bad("image too large");
    out.dpi = pixGetXRes(pix);
    return out;
  }

private:
  source src_;
  uint32_t pages_ = 0;
  std::unique_ptr<poppler::document> pdf_;
};

// -- parts --------------------------------------------------------------------

// A split call's document is read (or base64-decoded) once: each part's input
// names it by an unguessable id under this key and owns it (json_value's
// aliasing pointer), so memory is one document however many parts there are,
// and the document goes when the last part does. Inputs from callers cannot
// carry the key (the schema forbids it), nor guess a live id.
constexpr const char* part_key = "document";

struct shared_document {
  source src;
  std::string id;
  ~shared_document();
};

// The live shared documents by id. Weak: the parts own them.
class part_documents {
public:
  static part_documents& instance() {
    static part_documents registry;
    return registry;
  }

  std::shared_ptr<const shared_document> add(source src) {
    auto doc = std::make_shared<shared_document>();
    doc->src = std::move(src);
    std::lock_guard<std::mutex> guard{mtx_};
    do
      doc->id = random_id();
    while (docs_.count(doc->id) > 0);
    docs_.emplace(doc->id, doc);
    return doc;
  }

  std::shared_ptr<const shared_document> find(const std::string& id) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = docs_.find(id);
    return i == docs_.end() ? nullptr : i->second.lock();
  }

  void remove(const std::string& id) {
    std::lock_guard<std::mutex> guard{mtx_};
    docs_.erase(id);
  }

private:
  std::string random_id() {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 4; ++i) {
      auto x = rd_();
      for (int k = 0; k < 8; ++k, x >>= 4)
        out += hex[x & 15];
    }
    return out;
  }

  std::mutex mtx_;
  std::random_device rd_;
  std::map<std::string, std::weak_ptr<const shared_document>> docs_;
};

shared_document::~shared_document() {
  part_documents::instance().remove(id);
}

// One part's input and the document it reads, owned together.
struct part_input {
  json input;
  std::shared_ptr<const shared_document> doc;
};

// The shared document a part input names, or null for any other input.
std::shared_ptr<const shared_document> part_document(const json& in) {
  if (!in.is_object())
    return nullptr;
  auto i = in.find(part_key);
  if (i == in.end() || !i->is_string())
    return nullptr;
  return part_documents::instance().find(i->get<std::string>());
}

// -- the tool -----------------------------------------------------------------

// What one call asks for.
struct ocr_request {
  std::string languages; // "eng+deu"
  int psm = tesseract::PSM_AUTO;
  uint64_t dpi = 300;
  const json* pages = nullptr;
};

class ocr_tool final : public tool {
public:
  ocr_tool(ocr_options opts, std::string tessdata)
    : opts_(std::move(opts)), tessdata_(std::move(tessdata)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  ~ocr_tool() override {
    if (api_)
      api_->End();
  }

  std::string name() const override {
    return tool_name;
  }

  tool_description describe() const override {
    json word{
      {"type", "object"},
      {"properties",
       {{"text", {{"type", "string"}}},
        {"confidence", {{"type", "number"}}},
        {"bbox",
         {{"type", "object"},
          {"description", "Pixels from the page image's top left corner."},
          {"properties",
           {{"x", {{"type", "integer"}}},
            {"y", {{"type", "integer"}}},
            {"w", {{"type", "integer"}}},
            {"h", {{"type", "integer"}}}}}}}}},
    };
    json page{
      {"type", "object"},
      {"properties",
       {{"page", {{"type", "integer"}, {"minimum", 1}}},
        {"text", {{"type", "string"}}},
        {"confidence",
         {{"type", "number"},
          {"description", "Mean word confidence, 0-100; 0 if no words."}}},
        {"width", {{"type", "integer"}}},
        {"height", {{"type", "integer"}}},
        {"words", {{"type", "array"}, {"items", word}}}}},
      {"required", {"page", "text", "confidence", "words"}},
    };
    return {
      tool_name,
      "Reads the printed text of a scanned document or image (OCR with "
      "Tesseract). Accepts PNG, JPEG, TIFF (multi-page) and PDF, by file "
      "path (inside the configured root) or as base64 bytes. Returns each "
      "page's text with word boxes and confidences (0-100), the whole text "
      "(pages separated by a form feed) and the mean confidence. An empty "
      "page gives empty text.",
      json{
        {"type", "object"},
        {"properties",
         {{"path",
           {{"type", "string"},
            {"description", "File to read, relative to the tool's root "
                            "directory (tools.ocr.root)."}}},
          {"base64",
           {{"type", "string"},
            {"description", "The document's bytes, base64-encoded."}}},
          {"languages",
           {{"description", "Tesseract language codes, e.g. \"eng\" or "
                            "[\"eng\", \"deu\"]. Default: tools.ocr."
                            "languages."},
            {"oneOf",
             json::array({{{"type", "string"}},
                          {{"type", "array"},
                           {"items", {{"type", "string"}}},
                           {"minItems", 1}}})}}},
          {"psm",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", 13},
            // 2 only analyses the layout: no text to return.
            {"not", {{"const", 2}}},
            {"description",
             "Tesseract page segmentation mode: 3 automatic (default), 4 "
             "one column, 6 one block of text, 7 one line, 8 one word, 11 "
             "sparse text. 1 and 12 need osd.traineddata; 2 (layout "
             "only) is not allowed."}}},
          {"dpi",
           {{"type", "integer"},
            {"minimum", 50},
            {"maximum", 1200},
            {"description", "Resolution to render PDF pages at, and to "
                            "assume for images that record none. Default: "
                            "tools.ocr.dpi (300)."}}},
          {"pages",
           {{"description", "Pages to read (1-based): an array of numbers, "
                            "or a string such as \"1-3,5,8-\". Default: "
                            "all."},
            {"oneOf",
             json::array({{{"type", "string"}},
                          {{"type", "array"},
                           {"items", {{"type", "integer"}, {"minimum", 1}}},
                           {"minItems", 1}}})}}}}},
        {"oneOf", json::array({{{"required", {"path"}}},
                               {{"required", {"base64"}}}})},
        {"additionalProperties", false},
      },
      json{
        {"type", "object"},
        {"properties",
         {{"text", {{"type", "string"}}},
          {"confidence", {{"type", "number"}}},
          {"page_count",
           {{"type", "integer"},
            {"description", "Pages in the document (read or not)."}}},
          {"pages", {{"type", "array"}, {"items", page}}}}},
        {"required", {"text", "confidence", "page_count", "pages"}},
      },
    };
  }

  // Reads its document: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return true;
  }

  bool splits() const override {
    return opts_.pages_per_part > 0;
  }

  expected<std::vector<json_value>> split(const json_value& input,
                                          tool_context&) override {
    std::vector<json_value> parts;
    auto req = parse_request(*input);
    if (!req)
      return std::move(req.error());
    auto src = load(*input);
    if (!src)
      return std::move(src.error());
    if (src->format == doc_format::png || src->format == doc_format::jpeg)
      return parts;
    auto shared = part_documents::instance().add(std::move(*src));
    auto doc = document::open(shared->src);
    if (!doc)
      return std::move(doc.error());
    auto pages = select(*req, doc->pages());
    if (!pages)
      return std::move(pages.error());
    auto per = opts_.pages_per_part;
    if (pages->size() <= per)
      return parts;
    // Each part keeps the call's options, not its document: that is named.
    json common = *input;
    common.erase("path");
    common.erase("base64");
    common[part_key] = shared->id;
    for (size_t i = 0; i < pages->size(); i += per) {
      auto part = std::make_shared<part_input>();
      part->input = common;
      auto& sel = part->input["pages"] = json::array();
      for (size_t j = i; j < std::min<size_t>(i + per, pages->size()); ++j)
        sel.push_back((*pages)[j]);
      part->doc = shared;
      parts.emplace_back(std::shared_ptr<const json>{part, &part->input});
    }
    return parts;
  }

  expected<json_value> join(const json_value&,
                            std::vector<json_value> parts) override {
    json pages = json::array();
    uint64_t count = 0;
    for (auto& part : parts) {
      if (!part->is_object() || !part->contains("pages"))
        return make_error(errc::internal, "tool ocr: a part's output has "
                                          "no pages");
      count = part->value("page_count", count);
      for (auto& p : (*part)["pages"])
        pages.push_back(p);
    }
    return json_value{summarize(std::move(pages), count)};
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    // A part of a split call reads the call's document, checked by split.
    auto shared = part_document(*input);
    auto req = parse_request(*input, shared != nullptr);
    if (!req)
      return std::move(req.error());
    expected<source> src = shared ? expected<source>{shared->src}
                                  : load(*input);
    if (!src)
      return std::move(src.error());
    auto doc = document::open(std::move(*src));
    if (!doc)
      return std::move(doc.error());
    auto pages = select(*req, doc->pages());
    if (!pages)
      return std::move(pages.error());
    if (auto ok = engine(req->languages); !ok)
      return std::move(ok.error());
    api_->SetPageSegMode(static_cast<tesseract::PageSegMode>(req->psm));
    json out = json::array();
    for (auto n : *pages) {
      if (auto stop = interrupted(ctx, n))
        return std::move(*stop);
      auto img = doc->page(n, req->dpi);
      if (!img)
        return std::move(img.error());
      auto page = recognize(*img, n, req->dpi, ctx);
      if (!page)
        return std::move(page.error());
      out.push_back(std::move(*page));
    }
    return json_value{summarize(std::move(out), doc->pages())};
  }

private:
  static json summarize(json pages, uint64_t count) {
    std::string text;
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < pages.size(); ++i) {
      if (i > 0)
        text += '\f';
      text += pages[i]["text"].get<std::string>();
      if (!pages[i]["words"].empty()) {
        sum += pages[i]["confidence"].get<double>();
        ++n;
      }
    }
    double conf = n == 0 ? 0.0 : sum / static_cast<double>(n);
    return json{{"text", std::move(text)},
                {"confidence", std::round(conf * 100) / 100},
                {"page_count", count},
                {"pages", std::move(pages)}};
  }

  // The input schema says the shape and the ranges; what is checked here
  // is what it cannot say (installed languages, osd data, page lists). A
  // part's input was checked whole by split.
  expected<ocr_request> parse_request(const json& in, bool part = false) const {
    if (!part) {
      if (auto ok = detail::check_input(tool_name, input_schema_, in); !ok)
        return std::move(ok.error());
    }
    ocr_request req;
    req.dpi = opts_.dpi;
    auto langs = opts_.languages;
    if (auto i = in.find("languages"); i != in.end() && !i->is_null()) {
      langs.clear();
      if (i->is_string())
        langs.push_back(i->get<std::string>());
      else
        for (const auto& l : *i)
          langs.push_back(l.get<std::string>());
      for (size_t k = 0; k < langs.size(); ++k) {
        auto where = i->is_array() ? "/languages/" + std::to_string(k)
                                   : std::string{"/languages"};
        if (auto ok = check_language(langs[k]); !ok)
          return detail::input_error(tool_name, where,
                                     message_of(ok.error()));
      }
    }
    for (auto& l : langs)
      req.languages += (req.languages.empty() ? "" : "+") + l;
    if (auto i = in.find("psm"); i != in.end() && !i->is_null()) {
      auto psm = detail::as_uint(*i);
      if (!psm)
        return detail::input_error(tool_name, "/psm", "must be an integer");
      if ((*psm == 1 || *psm == 12) && !check_language("osd"))
        return detail::input_error(tool_name, "/psm",
                                   "mode " + std::to_string(*psm)
                                     + " needs osd.traineddata, which is "
                                       "not installed in "
                                     + tessdata_);
      req.psm = static_cast<int>(*psm);
    }
    if (auto i = in.find("dpi"); i != in.end() && !i->is_null()) {
      auto dpi = detail::as_uint(*i);
      if (!dpi)
        return detail::input_error(tool_name, "/dpi", "must be an integer");
      req.dpi = *dpi;
    }
    if (auto i = in.find("pages"); i != in.end())
      req.pages = &*i;
    return req;
  }

public:
  // Whether language `lang` can be used; the error names the directory.
  // Public for the factory, which checks the configured languages.
  expected<void> check_language(const std::string& lang) const {
    if (!valid_language_name(lang))
      return make_error(errc::invalid_input,
                        "\"" + lang + "\" is not a language code (letters, "
                        "digits, '_' or '-', such as \"eng\")");
    std::error_code ec;
    if (!fs::is_regular_file(fs::path{tessdata_} / (lang + ".traineddata"),
                             ec))
      return make_error(errc::invalid_input,
                        "language \"" + lang + "\" is not installed: no "
                          + lang + ".traineddata in " + tessdata_
                          + " (install tesseract-ocr-" + lang
                          + " or set tools.ocr.tessdata)");
    return {};
  }

private:
  expected<std::vector<uint32_t>> select(const ocr_request& req,
                                         uint32_t count) const {
    auto pages = select_pages(req.pages, count);
    if (!pages)
      return pages;
    if (pages->size() > opts_.max_pages)
      return detail::input_error(tool_name,
                                 req.pages ? "/pages" : "",
                                 std::to_string(pages->size())
                                   + " pages selected; at most "
                                   + std::to_string(opts_.max_pages)
                                   + " per call (tools.ocr.max_pages)");
    return pages;
  }

  // Reads the document named by `path` or carried by `base64`.
  expected<source> load(const json& in) const {
    auto p = in.find("path");
    auto b = in.find("base64");
    bool has_p = p != in.end() && !p->is_null();
    bool has_b = b != in.end() && !b->is_null();
    if (has_p == has_b)
      return detail::input_error(tool_name, "",
                                 "needs exactly one of \"path\" or "
                                 "\"base64\"");
    source src;
    std::string bytes;
    if (has_b) {
      src.where = "/base64";
      if (!b->is_string())
        return detail::input_error(tool_name, src.where, "must be a string");
      auto& text = b->get_ref<const std::string&>();
      if (text.size() / 4 * 3 > opts_.max_input_bytes + 3)
        return too_large(src.where);
      auto decoded = detail::base64_decode(text);
      if (!decoded)
        return detail::input_error(tool_name, src.where,
                                   "is not valid base64");
      bytes = std::move(*decoded);
    } else {
      src.where = "/path";
      if (!p->is_string() || p->get_ref<const std::string&>().empty())
        return detail::input_error(tool_name, src.where,
                                   "must be a non-empty string");
      auto read = read_file(p->get<std::string>());
      if (!read)
        return std::move(read.error());
      bytes = std::move(*read);
    }
    if (bytes.size() > opts_.max_input_bytes)
      return too_large(src.where);
    auto format = sniff(bytes);
    if (!format)
      return detail::input_error(tool_name, src.where,
                                 bytes.empty()
                                   ? "is empty"
                                   : "unsupported format (expected PNG, "
                                     "JPEG, TIFF or PDF)");
    src.format = *format;
    src.bytes = std::make_shared<const std::string>(std::move(bytes));
    return src;
  }

  caf::error too_large(const std::string& where) const {
    return detail::input_error(tool_name, where,
                               "larger than "
                                 + std::to_string(opts_.max_input_bytes)
                                 + " bytes (tools.ocr.max_input_bytes)");
  }

  // Reads file `name` inside the root as the file tool does
  // (fs/root_dir.hpp): checked, then opened without following a symlink
  // swapped in after the check.
  expected<std::string> read_file(const std::string& name) const {
    std::error_code ec;
    auto canonical = fs::canonical(opts_.root, ec);
    if (ec)
      return detail::input_error(tool_name, "/path",
                                 "the root directory " + opts_.root
                                   + " is not readable: " + ec.message());
    detail::root_dir root{tool_name, canonical};
    auto where = root.resolve(name);
    if (!where)
      return std::move(where.error());
    auto file = root.open_file(*where);
    if (!file)
      return std::move(file.error());
    return root.read_all(*where, *file, opts_.max_input_bytes,
                         "tools.ocr.max_input_bytes");
  }

  // Starts the engine, or restarts it when a call asks for other languages.
  expected<void> engine(const std::string& languages) {
    if (api_ && languages == languages_)
      return {};
    if (!api_)
      api_ = std::make_unique<tesseract::TessBaseAPI>();
    else
      api_->End();
    languages_.clear();
    if (api_->Init(tessdata_.c_str(), languages.c_str(),
                   tesseract::OEM_DEFAULT)
        != 0)
      return make_error(errc::tool_failed,
                        "tool ocr: cannot load languages \"" + languages
                          + "\" from " + tessdata_);
    // Tesseract's own diagnostics ("Empty page!!") go nowhere; errors are
    // reported by the tool. debug_file is one variable of the process (its
    // tprintf's), not the engine's: set once, not by every worker's engine.
    static std::once_flag quiet;
    std::call_once(quiet,
                   [this] { api_->SetVariable("debug_file", "/dev/null"); });
    languages_ = languages;
    return {};
  }

  static std::optional<caf::error> interrupted(const tool_context& ctx,
                                               uint32_t page) {
    if (ctx.cancelled())
      return make_error(errc::cancelled, "tool ocr: cancelled before page "
                                           + std::to_string(page));
    if (ctx.deadline_us != 0 && now_us() >= ctx.deadline_us)
      return make_error(errc::timeout, "tool ocr: the deadline passed "
                                       "before page "
                                         + std::to_string(page));
    return std::nullopt;
  }

  static int64_t now_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch())
      .count();
  }

  expected<json> recognize(page_image& img, uint32_t n, uint64_t dpi,
                           tool_context& ctx) {
    int width = 0;
    int height = 0;
    if (img.pix) {
      width = static_cast<int>(pixGetWidth(img.pix.get()));
      height = static_cast<int>(pixGetHeight(img.pix.get()));
      api_->SetImage(img.pix.get());
    } else {
      width = img.rendered.width();
      height = img.rendered.height();
      api_->SetImage(
        reinterpret_cast<const unsigned char*>(img.rendered.const_data()),
        width, height, 1, img.rendered.bytes_per_row());
    }
    api_->SetSourceResolution(img.dpi > 0 ? img.dpi : static_cast<int>(dpi));
    // Tesseract polls this between words, so a cancel or deadline stops a
    // long page too.
    tesseract::ETEXT_DESC monitor;
    monitor.cancel = [](void* self, int) -> bool {
      auto* c = static_cast<tool_context*>(self);
      return c->cancelled()
             || (c->deadline_us != 0 && now_us() >= c->deadline_us);
    };
    monitor.cancel_this = &ctx;
    auto rc = api_->Recognize(&monitor);
    if (auto stop = interrupted(ctx, n)) {
      api_->Clear();
      return std::move(*stop);
    }
    if (rc != 0) {
      api_->Clear();
      return make_error(errc::tool_failed, "tool ocr: page "
                                             + std::to_string(n)
                                             + ": recognition failed");
    }
    json words = json::array();
    double sum = 0;
    std::unique_ptr<tesseract::ResultIterator> it{api_->GetIterator()};
    if (it) {
      do {
        std::unique_ptr<char[]> w{it->GetUTF8Text(tesseract::RIL_WORD)};
        if (!w || w[0] == '\0')
          continue;
        int l = 0, t = 0, r = 0, b = 0;
        it->BoundingBox(tesseract::RIL_WORD, &l, &t, &r, &b);
        double conf = it->Confidence(tesseract::RIL_WORD);
        sum += conf;
        words.push_back(
          json{{"text", w.get()},
               {"confidence", std::round(conf * 100) / 100},
               {"bbox", {{"x", l}, {"y", t}, {"w", r - l}, {"h", b - t}}}});
      } while (it->Next(tesseract::RIL_WORD));
    }
    std::unique_ptr<char[]> text{api_->GetUTF8Text()};
    api_->Clear();
    std::string page_text = text ? text.get() : "";
    double conf = words.empty() ? 0.0
                                : sum / static_cast<double>(words.size());
    return json{{"page", n},
                {"text", std::move(page_text)},
                {"confidence", std::round(conf * 100) / 100},
                {"width", width},
                {"height", height},
                {"words", std::move(words)}};
  }

  ocr_options opts_;
  std::string tessdata_;
  json_schema input_schema_;
  std::unique_ptr<tesseract::TessBaseAPI> api_;
  std::string languages_;
};

} // namespace

namespace detail {

const std::string* ocr_part_bytes(const json& part) {
  auto doc = part_document(part);
  // The parts own the document: it outlives this pointer while they live.
  return doc ? doc->src.bytes.get() : nullptr;
}

} // namespace detail

json ocr_settings_schema() {
  ocr_options defaults;
  return detail::settings_schema(
    {{"root", detail::string_setting("Directory that path inputs must "
                                     "resolve inside.")},
     {"languages",
      {{"type", json::array({"string", "array"})},
       {"items", {{"type", "string"}}},
       {"minItems", 1},
       {"default", defaults.languages},
       {"description", "Language(s) when a call names none: a code or an "
                       "array of codes."}}},
     {"dpi", detail::integer_setting(defaults.dpi, 50, 1200,
                                     "Resolution PDF pages are rendered "
                                     "at.")},
     {"tessdata", detail::string_setting("Where <lang>.traineddata files "
                                         "are. Default: the packaged "
                                         "directory.")},
     {"max_pages", detail::integer_setting(defaults.max_pages, 1, 100000,
                                           "Most pages one call may "
                                           "read.")},
     {"max_input_bytes",
      detail::integer_setting(defaults.max_input_bytes, 1, uint64_t{1} << 31,
                              "Largest document (decoded size for "
                              "base64).")},
     {"pages_per_part",
      detail::integer_setting(defaults.pages_per_part, 0, 100000,
                              "Pages per part when a pool fans a document "
                              "out; 0 never splits.")}});
}

expected<std::unique_ptr<tool>> make_ocr_tool(const json_value& settings) {
  silence_libraries();
  const json& obj = *settings;
  ocr_options opts;
  opts.root = detail::setting(obj, "root", opts.root);
  opts.tessdata = detail::setting(obj, "tessdata", opts.tessdata);
  if (auto i = obj.find("languages"); i != obj.end() && !i->is_null())
    opts.languages = i->is_string()
                       ? std::vector<std::string>{i->get<std::string>()}
                       : i->get<std::vector<std::string>>();
  opts.dpi = detail::setting(obj, "dpi", opts.dpi);
  opts.max_pages = detail::setting(obj, "max_pages", opts.max_pages);
  opts.max_input_bytes = detail::setting(obj, "max_input_bytes",
                                         opts.max_input_bytes);
  opts.pages_per_part = detail::setting(obj, "pages_per_part",
                                        opts.pages_per_part);
  auto tessdata = opts.tessdata.empty() ? default_tessdata() : opts.tessdata;
  auto t = std::make_unique<ocr_tool>(opts, tessdata);
  for (auto& l : opts.languages)
    if (auto ok = t->check_language(l); !ok)
      return detail::settings_error(tool_name, "languages",
                                    message_of(ok.error()));
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
