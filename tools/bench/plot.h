// A small line-chart renderer for the benchmark's rate sweep: an RGB canvas with lines, boxes
// and a built-in 5x7 bitmap font (printable ASCII), charts with axes, "nice" ticks, polylines,
// dashed markers and a legend, written as PNG by libpng. Not thread safe; a Canvas owns its
// pixels.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace pagedllm::bench {

struct Rgb {
  uint8_t r = 0;
  uint8_t g = 0;
  uint8_t b = 0;
  bool operator==(const Rgb& other) const { return r == other.r && g == other.g && b == other.b; }
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};
inline constexpr Rgb kGrey{200, 200, 200};

// An RGB image, rows top to bottom, (0, 0) the top-left pixel. Drawing outside is clipped.
class Canvas {
 public:
  Canvas(int width, int height, Rgb background);

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& pixels() const { return pixels_; }  // [height, width, 3]
  Rgb At(int x, int y) const;

  void Set(int x, int y, Rgb color);
  void FillRect(int x0, int y0, int x1, int y1, Rgb color);  // [x0, x1) x [y0, y1)
  // A line `thickness` pixels wide; dash > 0 draws dash pixels on, dash pixels off.
  void Line(int x0, int y0, int x1, int y1, Rgb color, int thickness = 1, int dash = 0);
  // Text with its top-left corner at (x, y); each glyph 5x7 pixels times scale, 6 apart.
  void Text(int x, int y, std::string_view text, Rgb color, int scale = 1);
  static int TextWidth(std::string_view text, int scale = 1);
  static int TextHeight(int scale = 1) { return 7 * scale; }

 private:
  int width_;
  int height_;
  std::vector<uint8_t> pixels_;
};

// 8-bit RGB PNG. NOT_FOUND / INTERNAL naming the path on failure.
absl::Status WritePng(const Canvas& canvas, const std::string& path);

struct Series {
  std::string name;  // the legend's entry
  Rgb color;
  std::vector<double> x;  // x[i], y[i] one point; x ascending
  std::vector<double> y;
  bool dashed = false;
};

// A dashed line across the plot at x = value (vertical) or y = value (horizontal).
struct Marker {
  double value = 0;
  Rgb color;
  std::string label;
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
  std::vector<Marker> x_markers;
  std::vector<Marker> y_markers;
};

// Draws `chart` into the box [x0, x0 + width) x [y0, y0 + height) of `canvas`. Both axes start
// from "nice" bounds around the data (y from 0); tick labels take at most 4 significant digits.
void DrawChart(const Chart& chart, int x0, int y0, int width, int height, Canvas* canvas);

// Ticks covering [low, high]: about `target` multiples of 1, 2 or 5 x 10^k.
std::vector<double> NiceTicks(double low, double high, int target);

// The fixed palette of series colours (distinct, readable on white).
Rgb SeriesColor(int index);

}  // namespace pagedllm::bench
