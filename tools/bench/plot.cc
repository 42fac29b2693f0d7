#include "tools/bench/plot.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace pagedllm::bench {
namespace {

// The classic 5x7 font, printable ASCII (0x20..0x7e): five columns per glyph, left to right,
// bit 0 the top row.
constexpr uint8_t kFont5x7[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5f, 0x00, 0x00},  // space !
    {0x00, 0x07, 0x00, 0x07, 0x00}, {0x14, 0x7f, 0x14, 0x7f, 0x14},  // " #
    {0x24, 0x2a, 0x7f, 0x2a, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // $ %
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00},  // & '
    {0x00, 0x1c, 0x22, 0x41, 0x00}, {0x00, 0x41, 0x22, 0x1c, 0x00},  // ( )
    {0x08, 0x2a, 0x1c, 0x2a, 0x08}, {0x08, 0x08, 0x3e, 0x08, 0x08},  // * +
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08},  // , -
    {0x00, 0x60, 0x60, 0x00, 0x00}, {0x20, 0x10, 0x08, 0x04, 0x02},  // . /
    {0x3e, 0x51, 0x49, 0x45, 0x3e}, {0x00, 0x42, 0x7f, 0x40, 0x00},  // 0 1
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4b, 0x31},  // 2 3
    {0x18, 0x14, 0x12, 0x7f, 0x10}, {0x27, 0x45, 0x45, 0x45, 0x39},  // 4 5
    {0x3c, 0x4a, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 6 7
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1e},  // 8 9
    {0x00, 0x36, 0x36, 0x00, 0x00}, {0x00, 0x56, 0x36, 0x00, 0x00},  // : ;
    {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // < =
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06},  // > ?
    {0x32, 0x49, 0x79, 0x41, 0x3e}, {0x7e, 0x11, 0x11, 0x11, 0x7e},  // @ A
    {0x7f, 0x49, 0x49, 0x49, 0x36}, {0x3e, 0x41, 0x41, 0x41, 0x22},  // B C
    {0x7f, 0x41, 0x41, 0x22, 0x1c}, {0x7f, 0x49, 0x49, 0x49, 0x41},  // D E
    {0x7f, 0x09, 0x09, 0x09, 0x01}, {0x3e, 0x41, 0x49, 0x49, 0x7a},  // F G
    {0x7f, 0x08, 0x08, 0x08, 0x7f}, {0x00, 0x41, 0x7f, 0x41, 0x00},  // H I
    {0x20, 0x40, 0x41, 0x3f, 0x01}, {0x7f, 0x08, 0x14, 0x22, 0x41},  // J K
    {0x7f, 0x40, 0x40, 0x40, 0x40}, {0x7f, 0x02, 0x0c, 0x02, 0x7f},  // L M
    {0x7f, 0x04, 0x08, 0x10, 0x7f}, {0x3e, 0x41, 0x41, 0x41, 0x3e},  // N O
    {0x7f, 0x09, 0x09, 0x09, 0x06}, {0x3e, 0x41, 0x51, 0x21, 0x5e},  // P Q
    {0x7f, 0x09, 0x19, 0x29, 0x46}, {0x46, 0x49, 0x49, 0x49, 0x31},  // R S
    {0x01, 0x01, 0x7f, 0x01, 0x01}, {0x3f, 0x40, 0x40, 0x40, 0x3f},  // T U
    {0x1f, 0x20, 0x40, 0x20, 0x1f}, {0x3f, 0x40, 0x38, 0x40, 0x3f},  // V W
    {0x63, 0x14, 0x08, 0x14, 0x63}, {0x07, 0x08, 0x70, 0x08, 0x07},  // X Y
    {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7f, 0x41, 0x41, 0x00},  // Z [
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7f, 0x00},  // backslash ]
    {0x04, 0x02, 0x01, 0x02, 0x04}, {0x40, 0x40, 0x40, 0x40, 0x40},  // ^ _
    {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},  // ` a
    {0x7f, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20},  // b c
    {0x38, 0x44, 0x44, 0x48, 0x7f}, {0x38, 0x54, 0x54, 0x54, 0x18},  // d e
    {0x08, 0x7e, 0x09, 0x01, 0x02}, {0x0c, 0x52, 0x52, 0x52, 0x3e},  // f g
    {0x7f, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7d, 0x40, 0x00},  // h i
    {0x20, 0x40, 0x44, 0x3d, 0x00}, {0x7f, 0x10, 0x28, 0x44, 0x00},  // j k
    {0x00, 0x41, 0x7f, 0x40, 0x00}, {0x7c, 0x04, 0x18, 0x04, 0x78},  // l m
    {0x7c, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38},  // n o
    {0x7c, 0x14, 0x14, 0x14, 0x08}, {0x08, 0x14, 0x14, 0x18, 0x7c},  // p q
    {0x7c, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},  // r s
    {0x04, 0x3f, 0x44, 0x40, 0x20}, {0x3c, 0x40, 0x40, 0x20, 0x7c},  // t u
    {0x1c, 0x20, 0x40, 0x20, 0x1c}, {0x3c, 0x40, 0x30, 0x40, 0x3c},  // v w
    {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0c, 0x50, 0x50, 0x50, 0x3c},  // x y
    {0x44, 0x64, 0x54, 0x4c, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00},  // z {
    {0x00, 0x00, 0x7f, 0x00, 0x00}, {0x00, 0x41, 0x36, 0x08, 0x00},  // | }
    {0x08, 0x04, 0x08, 0x10, 0x08},                                  // ~
};

// At most 4 significant digits; 10000 and above in thousands ("20k").
std::string TickLabel(double value) {
  char text[32];
  if (std::fabs(value) >= 1e4) {
    std::snprintf(text, sizeof(text), "%.4gk", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.4g", std::fabs(value) < 1e-12 ? 0.0 : value);
  }
  return text;
}

// Maps [low, high] onto the pixels [from, to] (to < from for the y axis, which grows upwards).
struct Axis {
  double low = 0;
  double high = 1;
  int from = 0;
  int to = 1;
  int operator()(double value) const {
    return from + static_cast<int>(std::lround((value - low) / (high - low) * (to - from)));
  }
};

}  // namespace

Canvas::Canvas(int width, int height, Rgb background)
    : width_(std::max(1, width)), height_(std::max(1, height)) {
  pixels_.resize(static_cast<size_t>(width_) * height_ * 3);
  FillRect(0, 0, width_, height_, background);
}

Rgb Canvas::At(int x, int y) const {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return {};
  const uint8_t* p = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::Set(int x, int y, Rgb color) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  uint8_t* p = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
  p[0] = color.r;
  p[1] = color.g;
  p[2] = color.b;
}

void Canvas::FillRect(int x0, int y0, int x1, int y1, Rgb color) {
  for (int y = std::max(0, y0); y < std::min(height_, y1); ++y) {
    for (int x = std::max(0, x0); x < std::min(width_, x1); ++x) Set(x, y, color);
  }
}

void Canvas::Line(int x0, int y0, int x1, int y1, Rgb color, int thickness, int dash) {
  // Bresenham, stamping a thickness x thickness square at every step.
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  const int half = (thickness - 1) / 2;
  int error = dx + dy;
  for (int step = 0;; ++step) {
    if (dash <= 0 || (step / dash) % 2 == 0) {
      FillRect(x0 - half, y0 - half, x0 - half + thickness, y0 - half + thickness, color);
    }
    if (x0 == x1 && y0 == y1) break;
    const int twice = 2 * error;
    if (twice >= dy) {
      error += dy;
      x0 += sx;
    }
    if (twice <= dx) {
      error += dx;
      y0 += sy;
    }
  }
}

void Canvas::Text(int x, int y, std::string_view text, Rgb color, int scale) {
  for (char c : text) {
    const int code = static_cast<unsigned char>(c);
    const uint8_t* glyph = kFont5x7[(code >= 0x20 && code < 0x7f ? code : '?') - 0x20];
    for (int column = 0; column < 5; ++column) {
      for (int row = 0; row < 7; ++row) {
        if ((glyph[column] >> row) & 1) {
          FillRect(x + column * scale, y + row * scale, x + (column + 1) * scale,
                   y + (row + 1) * scale, color);
        }
      }
    }
    x += 6 * scale;
  }
}

int Canvas::TextWidth(std::string_view text, int scale) {
  return text.empty() ? 0 : static_cast<int>(text.size()) * 6 * scale - scale;
}

absl::Status WritePng(const Canvas& canvas, const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(canvas.width());
  image.height = static_cast<png_uint_32>(canvas.height());
  image.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&image, path.c_str(), /*convert_to_8bit=*/0, canvas.pixels().data(),
                               /*row_stride=*/0, /*colormap=*/nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InternalError(absl::StrCat(path, ": cannot write the PNG: ", message));
  }
  return absl::OkStatus();
}

std::vector<double> NiceTicks(double low, double high, int target) {
  if (!(high > low)) high = low + 1;
  const double raw = (high - low) / std::max(1, target);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double multiple : {1.0, 2.0, 5.0}) {
    if (multiple * magnitude >= raw * (1 - 1e-9)) {
      step = multiple * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  const double first = std::floor(low / step + 1e-9);
  const double last = std::ceil(high / step - 1e-9);
  for (double i = first; i <= last; ++i) ticks.push_back(i == 0 ? 0.0 : i * step);
  return ticks;
}

Rgb SeriesColor(int index) {
  static constexpr Rgb kPalette[] = {{31, 119, 180}, {214, 39, 40},   {44, 160, 44},
                                     {255, 127, 14}, {148, 103, 189}, {140, 86, 75}};
  return kPalette[index % 6];
}

void DrawChart(const Chart& chart, int x0, int y0, int width, int height, Canvas* canvas) {
  constexpr int kLeft = 56, kRight = 16, kTop = 36, kBottom = 36;
  double x_low = 0, x_high = 0, y_high = 0;
  bool any = false;
  for (const Series& series : chart.series) {
    for (size_t i = 0; i < series.x.size() && i < series.y.size(); ++i) {
      x_low = any ? std::min(x_low, series.x[i]) : series.x[i];
      x_high = any ? std::max(x_high, series.x[i]) : series.x[i];
      y_high = std::max(y_high, series.y[i]);
      any = true;
    }
  }
  for (const Marker& marker : chart.y_markers) y_high = std::max(y_high, marker.value);
  const std::vector<double> x_ticks = NiceTicks(x_low, x_high, 6);
  const std::vector<double> y_ticks = NiceTicks(0, y_high, 5);
  const Axis x_axis{x_ticks.front(), x_ticks.back(), x0 + kLeft, x0 + width - kRight};
  const Axis y_axis{y_ticks.front(), y_ticks.back(), y0 + height - kBottom, y0 + kTop};

  canvas->Text(x0 + (width - Canvas::TextWidth(chart.title, 2)) / 2, y0 + 4, chart.title, kBlack,
               2);
  canvas->Text(x0 + 4, y_axis.to - 14, chart.y_label, kBlack);
  canvas->Text(x_axis.to - Canvas::TextWidth(chart.x_label), y_axis.from + 22, chart.x_label,
               kBlack);
  for (double tick : y_ticks) {
    const int y = y_axis(tick);
    canvas->Line(x_axis.from, y, x_axis.to, y, kGrey);
    const std::string label = TickLabel(tick);
    canvas->Text(x_axis.from - 6 - Canvas::TextWidth(label), y - 3, label, kBlack);
  }
  for (double tick : x_ticks) {
    const int x = x_axis(tick);
    canvas->Line(x, y_axis.from, x, y_axis.to, kGrey);
    const std::string label = TickLabel(tick);
    canvas->Text(x - Canvas::TextWidth(label) / 2, y_axis.from + 6, label, kBlack);
  }
  canvas->Line(x_axis.from, y_axis.from, x_axis.to, y_axis.from, kBlack);
  canvas->Line(x_axis.from, y_axis.from, x_axis.from, y_axis.to, kBlack);

  for (const Marker& marker : chart.y_markers) {
    const int y = y_axis(marker.value);
    canvas->Line(x_axis.from, y, x_axis.to, y, marker.color, 1, 4);
    canvas->Text(x_axis.to - Canvas::TextWidth(marker.label) - 2, y - 10, marker.label,
                 marker.color);
  }
  for (const Marker& marker : chart.x_markers) {
    const int x = x_axis(marker.value);
    canvas->Line(x, y_axis.from, x, y_axis.to, marker.color, 1, 4);
    canvas->Text(x + 3, y_axis.to - 10, marker.label, marker.color);  // above the plot
  }
  for (const Series& series : chart.series) {
    const size_t points = std::min(series.x.size(), series.y.size());
    for (size_t i = 0; i < points; ++i) {
      const int x = x_axis(series.x[i]), y = y_axis(series.y[i]);
      canvas->FillRect(x - 2, y - 2, x + 3, y + 3, series.color);
      if (i + 1 < points) {
        canvas->Line(x, y, x_axis(series.x[i + 1]), y_axis(series.y[i + 1]), series.color, 2,
                     series.dashed ? 6 : 0);
      }
    }
  }

  // The legend, top left inside the plot.
  int legend_width = 0;
  for (const Series& series : chart.series) {
    legend_width = std::max(legend_width, Canvas::TextWidth(series.name));
  }
  if (chart.series.empty()) return;
  const int lx = x_axis.from + 8, ly = y_axis.to + 8;
  const int lw = legend_width + 34, lh = static_cast<int>(chart.series.size()) * 12 + 6;
  canvas->FillRect(lx, ly, lx + lw, ly + lh, kWhite);
  canvas->Line(lx, ly, lx + lw, ly, kBlack);
  canvas->Line(lx, ly + lh, lx + lw, ly + lh, kBlack);
  canvas->Line(lx, ly, lx, ly + lh, kBlack);
  canvas->Line(lx + lw, ly, lx + lw, ly + lh, kBlack);
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& series = chart.series[i];
    const int y = ly + 6 + static_cast<int>(i) * 12;
    canvas->Line(lx + 4, y + 3, lx + 24, y + 3, series.color, 2, series.dashed ? 6 : 0);
    canvas->Text(lx + 28, y, series.name, kBlack);
  }
}

}  // namespace pagedllm::bench
