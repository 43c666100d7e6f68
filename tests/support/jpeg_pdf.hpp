#pragma once

// Writes a PDF whose pages are JPEG images, one per page, embedded as they
// are (DCTDecode). Tests use it because Debian's ImageMagick policy forbids
// writing PDF.

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace cadre::test {

/// Size and channels of a baseline or progressive JPEG, from its SOF marker.
struct jpeg_info {
  int width = 0;
  int height = 0;
  int components = 0;
};

inline std::optional<jpeg_info> read_jpeg_info(const std::string& b) {
  size_t i = 2;
  while (i + 9 < b.size()) {
    if (static_cast<uint8_t>(b[i]) != 0xFF)
      return std::nullopt;
    auto marker = static_cast<uint8_t>(b[i + 1]);
    auto len = static_cast<size_t>((static_cast<uint8_t>(b[i + 2]) << 8)
                                   | static_cast<uint8_t>(b[i + 3]));
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8
        && marker != 0xCC) {
      auto u8 = [&](size_t k) { return static_cast<uint8_t>(b[i + k]); };
      return jpeg_info{(u8(7) << 8) | u8(8), (u8(5) << 8) | u8(6), u8(9)};
    }
    i += 2 + len;
  }
  return std::nullopt;
}

/// Writes `jpegs` (file contents) as the pages of the PDF at `path`, each
/// page sized so the image has `dpi` dots per inch. Returns false on error.
inline bool write_jpeg_pdf(const std::string& path,
                           const std::vector<std::string>& jpegs,
                           int dpi = 300) {
  std::string out = "%PDF-1.4\n";
  std::vector<size_t> offsets; // of objects 1..n
  auto begin_obj = [&] {
    offsets.push_back(out.size());
    out += std::to_string(offsets.size()) + " 0 obj\n";
  };
  size_t n = jpegs.size();
  // 1: catalog, 2: pages, then per page: page, content, image.
  begin_obj();
  out += "<< /Type /Catalog /Pages 2 0 R >>\nendobj\n";
  begin_obj();
  out += "<< /Type /Pages /Count " + std::to_string(n) + " /Kids [";
  for (size_t k = 0; k < n; ++k)
    out += " " + std::to_string(3 + 3 * k) + " 0 R";
  out += " ] >>\nendobj\n";
  for (size_t k = 0; k < n; ++k) {
    auto info = read_jpeg_info(jpegs[k]);
    if (!info)
      return false;
    double w = info->width * 72.0 / dpi;
    double h = info->height * 72.0 / dpi;
    auto page = 3 + 3 * k;
    std::ostringstream content;
    content << "q " << w << " 0 0 " << h << " 0 0 cm /Im0 Do Q\n";
    auto c = content.str();
    begin_obj();
    std::ostringstream p;
    p << "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " << w << " " << h
      << "] /Resources << /XObject << /Im0 " << page + 2
      << " 0 R >> >> /Contents " << page + 1 << " 0 R >>\nendobj\n";
    out += p.str();
    begin_obj();
    out += "<< /Length " + std::to_string(c.size()) + " >>\nstream\n" + c
           + "endstream\nendobj\n";
    begin_obj();
    out += "<< /Type /XObject /Subtype /Image /Width "
           + std::to_string(info->width) + " /Height "
           + std::to_string(info->height) + " /ColorSpace "
           + (info->components == 1 ? "/DeviceGray" : "/DeviceRGB")
           + " /BitsPerComponent 8 /Filter /DCTDecode /Length "
           + std::to_string(jpegs[k].size()) + " >>\nstream\n" + jpegs[k]
           + "\nendstream\nendobj\n";
  }
  auto xref = out.size();
  out += "xref\n0 " + std::to_string(offsets.size() + 1) + "\n";
  out += "0000000000 65535 f \n";
  for (auto off : offsets) {
    char line[32];
    std::snprintf(line, sizeof(line), "%010zu 00000 n \n", off);
    out += line;
  }
  out += "trailer\n<< /Size " + std::to_string(offsets.size() + 1)
         + " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref)
         + "\n%%EOF\n";
  std::ofstream f{path, std::ios::binary};
  f << out;
  return static_cast<bool>(f);
}

} // namespace cadre::test
