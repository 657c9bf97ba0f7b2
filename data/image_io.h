// Image files: PNG/JPEG in, PNG out (through stb_image / stb_image_write), and the
// Cityscapes colour palette for looking at label maps.
//
// Every failure throws c3::Error with the file's path and what is wrong with it: not found,
// not a PNG or JPEG, truncated or corrupt (with stb's reason), or, for labels, the wrong
// pixel format. Readers are thread-safe (stb keeps its failure reason thread-local).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace c3::data {

// An RGB image (c = 3) from a PNG or JPEG file. Grayscale is replicated, alpha dropped,
// 16-bit PNG channels are reduced to 8 bits.
Image read_image(const std::string& path);

// A label map (c = 1): the pixel values of an 8-bit grayscale PNG, unchanged. A palette PNG
// is turned back into its indices when its palette colours are distinct. RGB(A), gray+alpha,
// 16-bit or sub-8-bit grayscale PNGs and JPEGs (lossy) are refused with the reason.
Image read_label(const std::string& path);

// Writes a PNG with 1 (gray) or 3 (RGB) channels. Atomic: the bytes go to a temporary file
// in the same folder that is then renamed over `path`, so a reader never sees half a file.
// The parent folder must exist.
void write_png(const std::string& path, const Image& img);

// The whole content of a file; throws c3::Error naming it when it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const std::string& path);

constexpr int kCityscapesClasses = 19;
constexpr uint8_t kIgnoreLabel = 255;

// The 19 Cityscapes colours (RGB), indexed by trainId (METHOD.md "Cityscapes conventions").
const std::array<std::array<uint8_t, 3>, kCityscapesClasses>& cityscapes_palette();

// Label map (c = 1, trainIds) -> RGB image in the Cityscapes palette. 255 (ignore) and any
// other value outside 0..18 are drawn black.
Image colorize(const Image& label);

}  // namespace c3::data
