// Synthetic street scenes with Cityscapes trainIds: the embedded default dataset, so the
// whole pipeline runs on a fresh machine with no download.
//
// Each scene is a pinhole view of a street: a road converging to a vanishing point,
// sidewalks and grass verges beside it, building facades (windows, varying heights) or tree
// rows along both sides, a skyline on the horizon, and in front of them cars, people,
// poles with traffic signs and trees, drawn far to near so that near things occlude far
// ones. Textures, per-scene lighting and colour cast, shadows and pixel noise make colour
// alone a poor cue: cars take any colour, many buildings and poles are as grey as the road,
// the sky is sometimes overcast grey. The label of a pixel is the class of what was drawn
// last on it, so image and label agree exactly.
//
// Deterministic: the bytes depend only on (seed, index, size). Randomness comes from
// splitmix64 streams; the drawing uses only +, -, *, / and sqrt (no libm transcendental
// functions, whose last bits differ between C libraries).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace c3::data {

// The trainIds a synthetic label can hold: road 0, sidewalk 1, building 2, pole 5,
// traffic sign 7, vegetation 8, terrain 9, sky 10, person 11, car 13; with rare classes also
// wall 3, fence 4, rider 12, truck 14, bus 15, bicycle 18.
const std::vector<uint8_t>& synthetic_classes(bool rare = false);

struct SyntheticScene {
  Image image;  // h x w x 3
  Image label;  // h x w x 1, trainIds from synthetic_classes()
};

// One scene, a function of (seed, h, w, lighting, rare) only. `lighting` in [0, 1] scales the
// per-scene variation of exposure, colour cast and haze (1: the full variation; 0: every
// scene lit alike); the layout, objects, textures, shadows and noise do not depend on it.
// `rare` in [0, 1] adds the rare classes: a wall or a fence along each side in 30% x rare of
// the scenes each, a truck in 25% x rare, a bus in 15% x rare, a cyclist in 30% x rare and a
// parked bicycle in 25% x rare, into the scene made without them (less the cars and people
// a truck or bus stands in the place of); 0: none.
// `colour` in [0, 1] gives each scene its own colour rendition, as cameras and grading differ:
// a hue rotation by up to colour x 180 degrees, saturation x [1 - colour/2, 1 + colour/2],
// contrast and brightness x [1 - 0.4 colour, 1 + 0.4 colour] (PIL's operations,
// data/augment.h), drawn from the scene's own stream; 0: none (the image as before).
SyntheticScene render_scene(uint64_t seed, int h = 128, int w = 256, float lighting = 1.f, float rare = 0.f,
                            float colour = 0.f);

// The seed of image `index` of a split ("train" or "val") of the dataset made with `seed`.
uint64_t synthetic_scene_seed(uint64_t seed, const std::string& split, int index);

// Writes <out_dir>/leftImg8bit/{train,val}/synth/synth_<6 digits>_leftImg8bit.png and
// <out_dir>/gtFine/{train,val}/synth/synth_<6 digits>_gtFine_labelTrainIds.png (folders are
// created; files of the same names are overwritten, others left alone), rendering in
// parallel. Same seed, same bytes (for one version of the stb PNG encoder).
void make_synthetic(const std::string& out_dir, uint64_t seed, int n_train = 1000, int n_val = 200, int h = 128,
                    int w = 256, float lighting = 1.f, float rare = 0.f, float colour = 0.f);

}  // namespace c3::data
