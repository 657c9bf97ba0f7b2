// Image files through stb_image / stb_image_write (the Debian libstb-dev headers). The
// implementations are compiled here, once, as static functions (STB_*_STATIC), so they
// cannot clash with another copy of stb linked into the same program. Only the PNG and
// JPEG decoders are built: stb's TGA detection is so loose that random bytes can pass it.
#include "data/image_io.h"

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <unistd.h>

#include "core/checksum.h"
#include "core/file.h"
#include "core/error.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace c3::data {
namespace fs = std::filesystem;

namespace {

// Level 5 (stb's fastest; it reads anything lower as 5) instead of its default 8: files
// about 1% bigger, written faster (the synthetic dataset writes thousands). Set once at
// start-up, before any thread writes.
[[maybe_unused]] const bool kPngLevelSet = (stbi_write_png_compression_level = 5, true);

const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

bool is_png(const std::vector<uint8_t>& b) { return b.size() >= 8 && std::memcmp(b.data(), kPngSig, 8) == 0; }
bool is_jpeg(const std::vector<uint8_t>& b) { return b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// The PNG header fields stb does not report: bit depth and colour type (IHDR is always the
// first chunk, at a fixed offset).
struct PngHeader {
  int bit_depth = 0, color_type = -1;
};

PngHeader png_header(const std::string& path, const std::vector<uint8_t>& b) {
  C3_CHECK(b.size() >= 33 && std::memcmp(b.data() + 12, "IHDR", 4) == 0, path,
           ": truncated or corrupt PNG (no IHDR header)");
  return {b[24], b[25]};
}

// The PLTE chunk's colours, found by walking the chunks; empty when there is none.
std::vector<std::array<uint8_t, 3>> png_palette(const std::vector<uint8_t>& b) {
  size_t pos = 8;
  while (pos + 12 <= b.size()) {
    const uint32_t len = be32(&b[pos]);
    if (len > b.size() - pos - 12) break;
    if (std::memcmp(&b[pos + 4], "PLTE", 4) == 0) {
      std::vector<std::array<uint8_t, 3>> pal(len / 3);
      for (size_t i = 0; i < pal.size(); ++i)
        for (int k = 0; k < 3; ++k) pal[i][size_t(k)] = b[pos + 8 + 3 * i + size_t(k)];
      return pal;
    }
    if (std::memcmp(&b[pos + 4], "IDAT", 4) == 0) break;  // PLTE must come before IDAT
    pos += 12 + len;
  }
  return {};
}

// Walks the chunks of a PNG and checks their lengths and CRCs, up to IEND. stb checks
// neither (a flipped bit in a label would silently change classes), and its reasons for a
// cut file are cryptic ("outofdata", or an empty chunk name).
void validate_png(const std::string& path, const std::vector<uint8_t>& b) {
  for (size_t pos = 8; pos < b.size();) {
    const size_t left = b.size() - pos;
    C3_CHECK(left >= 12, path, ": truncated PNG (", left, " bytes at byte ", pos, " where a chunk should start)");
    const uint32_t len = be32(&b[pos]);
    std::string type(b.begin() + long(pos) + 4, b.begin() + long(pos) + 8);
    for (char& ch : type) ch = std::isalpha(uint8_t(ch)) ? ch : '?';
    C3_CHECK(len <= left - 12, path, ": truncated or corrupt PNG (chunk '", type, "' at byte ", pos, " needs ",
             uint64_t(len) + 12, " bytes, ", left, " remain)");
    C3_CHECK(crc32(&b[pos + 4], len + 4) == be32(&b[pos + 8 + len]), path, ": corrupt PNG (CRC mismatch in chunk '",
             type, "' at byte ", pos, ")");
    if (type == "IEND") return;
    pos += 12 + len;
  }
  C3_CHECK(false, path, ": truncated PNG (it ends without an IEND chunk)");
}

const char* color_type_name(int t) {
  switch (t) {
    case 0: return "grayscale";
    case 2: return "RGB";
    case 3: return "palette";
    case 4: return "grayscale+alpha";
    case 6: return "RGBA";
  }
  return "unknown colour type";
}

// Walks the segments of a JPEG and checks their lengths and Huffman tables before stb sees
// them: stb 2.27 builds a table of more than 256 codes past the end of its arrays (memory
// corruption, found by make fuzz).
void validate_jpeg(const std::string& path, const std::vector<uint8_t>& b) {
  const size_t n = b.size();
  for (size_t pos = 2; pos + 1 < n;) {
    if (b[pos] != 0xFF || b[pos + 1] == 0xFF) {  // entropy-coded data, or a fill byte
      ++pos;
      continue;
    }
    const uint8_t m = b[pos + 1];
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {  // stuffed 0xFF, TEM, RSTn, SOI
      pos += 2;
      continue;
    }
    if (m == 0xD9) return;  // end of image
    C3_CHECK(pos + 4 <= n, path, ": truncated JPEG (segment 0xFF", int(m), " at byte ", pos, ")");
    const size_t len = size_t(b[pos + 2]) << 8 | b[pos + 3];
    C3_CHECK(len >= 2 && pos + 2 + len <= n, path, ": truncated or corrupt JPEG (segment 0xFF", int(m), " at byte ",
             pos, " claims ", len, " bytes)");
    if (m == 0xC4) {  // DHT: one or more tables of 16 code counts, then the symbols
      for (size_t p = pos + 4, end = pos + 2 + len; p < end;) {
        C3_CHECK(p + 17 <= end && (b[p] >> 4) <= 1 && (b[p] & 15) <= 3, path,
                 ": corrupt JPEG (a Huffman table header at byte ", p, ")");
        size_t codes = 0;
        for (int i = 1; i <= 16; ++i) codes += b[p + size_t(i)];
        C3_CHECK(codes <= 256 && p + 17 + codes <= end, path, ": corrupt JPEG (a Huffman table of ", codes,
                 " codes at byte ", p, "; at most 256 fit)");
        p += 17 + codes;
      }
    }
    pos += 2 + len;
  }
}

// Decodes with stb into `channels` channels; failures name the file and stb's reason.
Image decode(const std::string& path, const std::vector<uint8_t>& bytes, int channels) {
  C3_CHECK(is_png(bytes) || is_jpeg(bytes), path, ": not a PNG or JPEG file (",
           bytes.empty() ? "empty file" : "unrecognized signature", ")");
  C3_CHECK(bytes.size() <= size_t(INT32_MAX), path, ": file too large (", bytes.size(), " bytes)");
  // stb decodes a JPEG that stops early without complaint (the missing blocks come out
  // gray), so a JPEG must end with its end-of-image marker (trailing padding allowed).
  if (is_jpeg(bytes)) {
    const size_t n = bytes.size(), from = n > 64 ? n - 64 : 0;
    bool eoi = false;
    for (size_t i = from; i + 1 < n; ++i) eoi |= bytes[i] == 0xFF && bytes[i + 1] == 0xD9;
    C3_CHECK(eoi, path, ": truncated JPEG (no end-of-image marker)");
    validate_jpeg(path, bytes);
  }
  int w = 0, h = 0, file_c = 0;
  uint8_t* px = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &file_c, channels);
  C3_CHECK(px != nullptr, path, ": truncated or corrupt ", is_png(bytes) ? "PNG" : "JPEG", " (stb_image: ",
           stbi_failure_reason() ? stbi_failure_reason() : "unknown error", ")");
  Image img(h, w, channels);
  std::memcpy(img.px.data(), px, img.px.size());
  stbi_image_free(px);
  return img;
}

// RGB pixels of a decoded palette PNG back to palette indices; needs distinct colours.
Image palette_indices(const std::string& path, const Image& rgb, const std::vector<std::array<uint8_t, 3>>& pal) {
  C3_CHECK(!pal.empty(), path, ": palette PNG without a PLTE chunk");
  std::map<uint32_t, int> index;
  for (size_t i = 0; i < pal.size(); ++i) {
    const uint32_t key = uint32_t(pal[i][0]) << 16 | uint32_t(pal[i][1]) << 8 | pal[i][2];
    C3_CHECK(index.emplace(key, int(i)).second, path, ": palette PNG whose palette repeats a colour (entries ",
             index[key], " and ", i, "), so the class indices cannot be recovered; save it as 8-bit grayscale");
  }
  Image out(rgb.h, rgb.w, 1);
  uint32_t last_key = UINT32_MAX;
  int last = 0;
  for (size_t i = 0; i < out.px.size(); ++i) {
    const uint8_t* p = &rgb.px[3 * i];
    const uint32_t key = uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2];
    if (key != last_key) {  // runs of one colour are the common case
      auto it = index.find(key);
      C3_CHECK(it != index.end(), path, ": corrupt palette PNG (pixel colour not in the palette)");
      last_key = key, last = it->second;
    }
    out.px[i] = uint8_t(last);
  }
  return out;
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  C3_CHECK(fs::exists(st) || !fs::is_symlink(fs::symlink_status(path, ec)), path,
           ": a symbolic link to a file that does not exist");
  C3_CHECK(fs::exists(st), path, ": file not found");
  C3_CHECK(!fs::is_directory(st), path, ": is a directory, not a file");
  // A FIFO would block the read for ever, a device would read without end.
  C3_CHECK(fs::is_regular_file(st), path, ": not a regular file (a FIFO, socket or device)");
  FILE* f = std::fopen(path.c_str(), "rb");
  C3_CHECK(f != nullptr, path, ": cannot open (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  C3_CHECK(!failed, path, ": read error");
  return bytes;
}

Image read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (is_png(bytes)) validate_png(path, bytes);
  return decode(path, bytes, 3);
}

Image read_label(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  C3_CHECK(!is_jpeg(bytes), path, ": a label map must be a PNG, not a JPEG (lossy compression changes class ids)");
  C3_CHECK(is_png(bytes), path, ": not a PNG file (", bytes.empty() ? "empty file" : "unrecognized signature", ")");
  validate_png(path, bytes);
  const PngHeader hd = png_header(path, bytes);
  if (hd.color_type == 3) return palette_indices(path, decode(path, bytes, 3), png_palette(bytes));
  C3_CHECK(hd.color_type == 0, path, ": a label map must be an 8-bit single-channel PNG, this one is ",
           color_type_name(hd.color_type), " (", hd.color_type == 2 || hd.color_type == 6 ? "a colourized label? " : "",
           "stored with ", hd.color_type == 4 ? 2 : hd.color_type == 6 ? 4 : 3, " channels)");
  // stb rescales 1/2/4-bit gray to 0..255 and cuts 16-bit to its high byte: both would
  // change the class ids, so only 8-bit is accepted.
  C3_CHECK(hd.bit_depth == 8, path, ": a label map must be 8-bit grayscale, this one has ", hd.bit_depth,
           "-bit samples");
  return decode(path, bytes, 1);
}

void write_png(const std::string& path, const Image& img) {
  C3_CHECK(img.c == 1 || img.c == 3, path, ": write_png takes 1 or 3 channels, got ", img.c);
  C3_CHECK(img.h > 0 && img.w > 0 && img.px.size() == size_t(img.h) * img.w * img.c, path,
           ": write_png: image ", img.h, "x", img.w, "x", img.c, " with ", img.px.size(), " bytes");
  std::vector<uint8_t> bytes;
  auto append = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int ok = stbi_write_png_to_func(append, &bytes, img.w, img.h, img.c, img.px.data(), img.w * img.c);
  C3_CHECK(ok && !bytes.empty(), path, ": PNG encoding failed");
  write_file_atomic(path, bytes);
}

const std::array<std::array<uint8_t, 3>, kCityscapesClasses>& cityscapes_palette() {
  static const std::array<std::array<uint8_t, 3>, kCityscapesClasses> pal = {{
      {128, 64, 128}, {244, 35, 232}, {70, 70, 70},    {102, 102, 156}, {190, 153, 153},
      {153, 153, 153}, {250, 170, 30}, {220, 220, 0},  {107, 142, 35},  {152, 251, 152},
      {70, 130, 180},  {220, 20, 60},  {255, 0, 0},    {0, 0, 142},     {0, 0, 70},
      {0, 60, 100},    {0, 80, 100},   {0, 0, 230},    {119, 11, 32},
  }};
  return pal;
}

Image colorize(const Image& label) {
  C3_CHECK(label.c == 1, "colorize: expected a label map with 1 channel, got ", label.c);
  const auto& pal = cityscapes_palette();
  Image out(label.h, label.w, 3);
  for (size_t i = 0; i < label.px.size(); ++i) {
    const uint8_t v = label.px[i];
    if (v < kCityscapesClasses) std::memcpy(&out.px[3 * i], pal[v].data(), 3);
  }
  return out;
}

}  // namespace c3::data
