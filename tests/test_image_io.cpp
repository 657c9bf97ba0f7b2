// Image files: PNG round trips, the error for every kind of bad file (each must name the
// file), palette labels, and the Cityscapes palette.
#include <array>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/checksum.h"
#include "core/error.h"
#include "data/image_io.h"
#include "tests/data_helpers.h"

// The test's own copy of stb_image_write, private to this file (static functions), to make
// the files our library cannot write: JPEGs and hand-built palette PNGs.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using namespace c3::data;
using c3test::TempDir;
namespace fs = std::filesystem;

namespace {

// Every pixel different: value = (y * 31 + x * 7 + channel * 101) mod 256.
Image pattern(int h, int w, int c) {
  Image img(h, w, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(y, x)[k] = uint8_t((y * 31 + x * 7 + k * 101) % 256);
  return img;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

// A palette PNG built by hand: signature, IHDR, PLTE, IDAT (zlib of rows with filter 0), IEND.
std::vector<uint8_t> palette_png(int h, int w, const std::vector<std::array<uint8_t, 3>>& pal,
                                 const std::vector<uint8_t>& idx) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> body(type, type + 4);
    body.insert(body.end(), data.begin(), data.end());
    put32(out, uint32_t(data.size()));
    out.insert(out.end(), body.begin(), body.end());
    put32(out, stbiw__crc32(body.data(), int(body.size())));
  };
  std::vector<uint8_t> ihdr;
  put32(ihdr, uint32_t(w)), put32(ihdr, uint32_t(h));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // 8 bits, palette, deflate, filter 0, no interlace
  chunk("IHDR", ihdr);
  std::vector<uint8_t> plte;
  for (const auto& c : pal) plte.insert(plte.end(), c.begin(), c.end());
  chunk("PLTE", plte);
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), idx.begin() + y * w, idx.begin() + (y + 1) * w);
  }
  int zlen = 0;
  unsigned char* z = stbi_zlib_compress(raw.data(), int(raw.size()), &zlen, 8);
  REQUIRE(z != nullptr);
  chunk("IDAT", std::vector<uint8_t>(z, z + zlen));
  STBIW_FREE(z);
  chunk("IEND", {});
  return out;
}

std::vector<uint8_t> jpeg_bytes(const Image& img) {
  std::vector<uint8_t> out;
  auto append = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  REQUIRE(stbi_write_jpg_to_func(append, &out, img.w, img.h, img.c, img.px.data(), 95));
  return out;
}

}  // namespace

TEST_CASE("io: PNG round trip, exact bytes, atomic write leaves no temporary file") {
  TempDir dir;
  const Image rgb = pattern(7, 13, 3), gray = pattern(5, 3, 1);
  write_png(dir / "rgb.png", rgb);
  write_png(dir / "gray.png", gray);
  const Image back = read_image(dir / "rgb.png");
  CHECK(back.h == 7);
  CHECK(back.w == 13);
  CHECK(back.c == 3);
  CHECK(back.px == rgb.px);
  const Image lab = read_label(dir / "gray.png");
  CHECK((lab.h == 5 && lab.w == 3 && lab.c == 1));
  CHECK(lab.px == gray.px);
  // A gray file read as an image: the value replicated into R, G and B.
  const Image g3 = read_image(dir / "gray.png");
  REQUIRE(g3.c == 3);
  CHECK((g3.at(4, 2)[0] == gray.at(4, 2)[0] && g3.at(4, 2)[1] == gray.at(4, 2)[0] && g3.at(4, 2)[2] == gray.at(4, 2)[0]));
  // Overwriting replaces the file; only the two final files remain in the folder.
  write_png(dir / "rgb.png", pattern(2, 2, 3));
  CHECK(read_image(dir / "rgb.png").px == pattern(2, 2, 3).px);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 2);
  CHECK_THROWS_WITH_AS(write_png(dir.path + "/no/such/dir/x.png", rgb), c3test::has("no/such/dir/x.png"),
                       c3::Error);
  CHECK_THROWS_WITH_AS(write_png(dir / "two.png", Image(2, 2, 2)), c3test::has("1 or 3 channels, got 2"),
                       c3::Error);
}

TEST_CASE("io: JPEG is read (lossy, so within a tolerance)") {
  TempDir dir;
  Image img(16, 16, 3, 0);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) img.at(y, x)[0] = 200, img.at(y, x)[1] = 100, img.at(y, x)[2] = 50;
  c3test::write_bytes(dir / "a.jpg", jpeg_bytes(img));
  const Image back = read_image(dir / "a.jpg");
  REQUIRE((back.h == 16 && back.w == 16 && back.c == 3));
  // A flat colour survives quality-95 JPEG within a few levels (chroma rounding).
  for (int k = 0; k < 3; ++k) CHECK(std::abs(int(back.at(8, 8)[k]) - int(img.at(8, 8)[k])) <= 4);
}

// stb 2.27 writes a Huffman table of more than 256 codes past the end of its arrays (found by
// make fuzz; tests/fuzz/regressions/image/): the JPEG's tables are checked before stb runs.
TEST_CASE("io: a JPEG Huffman table of more than 256 codes, or a segment past the end, is an error") {
  TempDir dir;
  Image img(16, 16, 3, 90);
  const std::vector<uint8_t> good = jpeg_bytes(img);
  size_t dht = 0;
  for (size_t i = 2; i + 1 < good.size() && !dht; ++i)
    if (good[i] == 0xFF && good[i + 1] == 0xC4) dht = i;
  REQUIRE(dht > 0);
  std::vector<uint8_t> bad = good;
  bad[dht + 5 + 15] = 255;  // the first table's count of 16-bit codes: now more than 256 in all
  c3test::write_bytes(dir / "huff.jpg", bad);
  CHECK_THROWS_WITH_AS(read_image(dir / "huff.jpg"), c3test::has("huff.jpg: corrupt JPEG (a Huffman table of"), c3::Error);
  bad = good;
  bad[dht + 2] = 0xFF;  // the segment's length runs past the end of the file
  c3test::write_bytes(dir / "len.jpg", bad);
  CHECK_THROWS_WITH_AS(read_image(dir / "len.jpg"), c3test::has("len.jpg: truncated or corrupt JPEG (segment"), c3::Error);
  c3test::write_bytes(dir / "good.jpg", good);
  CHECK_NOTHROW(read_image(dir / "good.jpg"));
}

TEST_CASE("io: every bad file is a c3::Error naming the file and the problem") {
  TempDir dir;
  using c3test::has;
  const std::string missing = dir.path + "/missing.png";
  CHECK_THROWS_WITH_AS(read_image(missing), has(missing + ": file not found"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(missing), has(missing + ": file not found"), c3::Error);
  CHECK_THROWS_WITH_AS(read_image(dir.path), has(dir.path + ": is a directory"), c3::Error);

  std::mt19937 rng(3);
  std::vector<uint8_t> noise(4000);
  for (auto& b : noise) b = uint8_t(rng());
  noise[0] = 0x12;  // certainly neither signature
  const std::string junk = dir / "junk.png";
  c3test::write_bytes(junk, noise);
  CHECK_THROWS_WITH_AS(read_image(junk), has(junk + ": not a PNG or JPEG file"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(junk), has(junk + ": not a PNG file"), c3::Error);
  const std::string empty = dir / "empty.png";
  c3test::write_bytes(empty, {});
  CHECK_THROWS_WITH_AS(read_image(empty), has(empty + ": not a PNG or JPEG file (empty file)"), c3::Error);

  // A PNG signature followed by garbage, and a valid PNG cut in half.
  const std::string good = dir / "good.png";
  write_png(good, pattern(40, 50, 3));
  std::vector<uint8_t> bytes = c3test::file_bytes(good);
  std::vector<uint8_t> corrupt(bytes.begin(), bytes.begin() + 8);
  corrupt.insert(corrupt.end(), noise.begin(), noise.end());
  c3test::write_bytes(dir / "corrupt.png", corrupt);
  CHECK_THROWS_WITH_AS(read_image(dir / "corrupt.png"), has(dir / "corrupt.png"), c3::Error);
  CHECK_THROWS_WITH_AS(read_image(dir / "corrupt.png"), has("truncated or corrupt PNG"), c3::Error);
  const std::string half = dir / "half.png";
  c3test::write_bytes(half, std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  // The IDAT chunk starts at byte 33 (after the signature and the 25-byte IHDR chunk).
  CHECK_THROWS_WITH_AS(read_image(half), has(half + ": truncated or corrupt PNG (chunk 'IDAT' at byte 33 needs"),
                       c3::Error);
  const std::string no_end = dir / "no_end.png";  // cut exactly before the 12-byte IEND chunk
  c3test::write_bytes(no_end, std::vector<uint8_t>(bytes.begin(), bytes.end() - 12));
  CHECK_THROWS_WITH_AS(read_image(no_end), has(no_end + ": truncated PNG (it ends without an IEND chunk)"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(no_end), has(no_end + ": truncated PNG"), c3::Error);

  // One flipped bit in the pixel data: stb would not notice, the chunk CRC does.
  REQUIRE(std::memcmp(&bytes[37], "IDAT", 4) == 0);
  std::vector<uint8_t> flipped = bytes;
  flipped[60] ^= 0x10;
  c3test::write_bytes(dir / "flip.png", flipped);
  CHECK_THROWS_WITH_AS(read_image(dir / "flip.png"), has(dir / "flip.png" + ": corrupt PNG (CRC mismatch in chunk 'IDAT' at byte 33)"),
                       c3::Error);
  // Chunks intact (CRC recomputed) but the compressed stream is noise: stb's reason is shown.
  std::vector<uint8_t> bad_zlib = bytes;
  const uint32_t idat_len = uint32_t(bytes[33]) << 24 | uint32_t(bytes[34]) << 16 | uint32_t(bytes[35]) << 8 | bytes[36];
  for (uint32_t i = 0; i < idat_len; ++i) bad_zlib[41 + i] = noise[i % noise.size()];
  const uint32_t crc = stbiw__crc32(&bad_zlib[37], int(idat_len + 4));
  for (int k = 0; k < 4; ++k) bad_zlib[41 + idat_len + uint32_t(k)] = uint8_t(crc >> (24 - 8 * k));
  c3test::write_bytes(dir / "zlib.png", bad_zlib);
  CHECK_THROWS_WITH_AS(read_image(dir / "zlib.png"), has(dir / "zlib.png" + ": truncated or corrupt PNG (stb_image: "),
                       c3::Error);

  // A JPEG cut in half: stb alone would decode it as gray blocks.
  const std::vector<uint8_t> jpg = jpeg_bytes(pattern(32, 32, 3));
  const std::string cut = dir / "cut.jpg";
  c3test::write_bytes(cut, std::vector<uint8_t>(jpg.begin(), jpg.begin() + jpg.size() / 2));
  CHECK_THROWS_WITH_AS(read_image(cut), has(cut + ": truncated JPEG"), c3::Error);
}

TEST_CASE("io: a label must be an 8-bit single-channel PNG") {
  TempDir dir;
  using c3test::has;
  const std::string rgb = dir / "colour_label.png";
  write_png(rgb, pattern(4, 4, 3));
  CHECK_THROWS_WITH_AS(read_label(rgb), has(rgb + ": a label map must be an 8-bit single-channel PNG"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(rgb), has("this one is RGB"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(rgb), has("3 channels"), c3::Error);
  const std::string jpg = dir / "label.jpg";
  c3test::write_bytes(jpg, jpeg_bytes(pattern(8, 8, 1)));
  CHECK_THROWS_WITH_AS(read_label(jpg), has(jpg + ": a label map must be a PNG, not a JPEG"), c3::Error);
  // The same gray file with its IHDR bit depth set to 16 (byte 24, CRC redone): refused by
  // the header check before stb would cut the samples to 8 bits.
  write_png(dir / "g.png", pattern(4, 4, 1));
  std::vector<uint8_t> b = c3test::file_bytes(dir / "g.png");
  REQUIRE(b[24] == 8);
  b[24] = 16;
  const uint32_t crc = stbiw__crc32(&b[12], 17);  // IHDR type + 13 data bytes; CRC at 29
  for (int k = 0; k < 4; ++k) b[29 + size_t(k)] = uint8_t(crc >> (24 - 8 * k));
  c3test::write_bytes(dir / "g16.png", b);
  CHECK_THROWS_WITH_AS(read_label(dir / "g16.png"), has("has 16-bit samples"), c3::Error);
}

TEST_CASE("io: palette labels give back their indices; a palette that repeats a colour is refused") {
  TempDir dir;
  const std::vector<std::array<uint8_t, 3>> pal = {{0, 0, 0}, {128, 64, 128}, {10, 20, 30}, {255, 255, 255}};
  const std::vector<uint8_t> idx = {0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 2};  // 3 x 4
  c3test::write_bytes(dir / "pal.png", palette_png(3, 4, pal, idx));
  const Image l = read_label(dir / "pal.png");
  CHECK((l.h == 3 && l.w == 4 && l.c == 1));
  CHECK(l.px == idx);
  auto dup = pal;
  dup[3] = dup[1];
  c3test::write_bytes(dir / "dup.png", palette_png(3, 4, dup, idx));
  CHECK_THROWS_WITH_AS(read_label(dir / "dup.png"), c3test::has(dir / "dup.png"), c3::Error);
  CHECK_THROWS_WITH_AS(read_label(dir / "dup.png"), c3test::has("repeats a colour (entries 1 and 3)"),
                       c3::Error);
}

TEST_CASE("io: Cityscapes palette and colorize") {
  const auto& pal = cityscapes_palette();
  CHECK(pal[0] == std::array<uint8_t, 3>{128, 64, 128});   // road
  CHECK(pal[10] == std::array<uint8_t, 3>{70, 130, 180});  // sky
  CHECK(pal[13] == std::array<uint8_t, 3>{0, 0, 142});     // car
  CHECK(pal[18] == std::array<uint8_t, 3>{119, 11, 32});   // bicycle
  Image l(1, 4, 1);
  l.px = {0, 13, 255, 40};
  const Image c = colorize(l);
  CHECK(c.c == 3);
  CHECK(c.px == std::vector<uint8_t>{128, 64, 128, 0, 0, 142, 0, 0, 0, 0, 0, 0});
  CHECK_THROWS_WITH_AS(colorize(Image(2, 2, 3)), c3test::has("colorize: expected a label map with 1 channel"),
                       c3::Error);
}

TEST_CASE("crc32: equals stb's (the PNG CRC) at every length and split") {
  std::vector<uint8_t> data(1000);
  std::mt19937 rng(3);
  for (auto& v : data) v = uint8_t(rng());
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(63), size_t(1000)}) {
    CAPTURE(n);
    const uint32_t want = n ? stbiw__crc32(data.data(), int(n)) : 0;
    CHECK(c3::crc32(data.data(), n) == want);
    CHECK(c3::crc32(data.data() + n / 3, n - n / 3, c3::crc32(data.data(), n / 3)) == want);  // continued
  }
}
