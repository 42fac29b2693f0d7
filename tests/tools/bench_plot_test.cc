// pagedllm-bench's PNG plot: the canvas, the chart and the PNG writer, read back with libpng.
#include <gtest/gtest.h>
#include <png.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tools/bench/plot.h"
#include "tools/bench/sweep.h"

namespace pagedllm::bench {
namespace {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]
  Rgb At(int x, int y) const {
    const uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Image ReadPng(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_file(&image, path.c_str())) << image.message;
  image.format = PNG_FORMAT_RGB;
  Image out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.rgb.resize(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, out.rgb.data(), 0, nullptr)) << image.message;
  return out;
}

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/" + name + "-" + std::to_string(::getpid()) + ".png";
}

int CountColor(const Canvas& canvas, Rgb color) {
  int count = 0;
  for (int y = 0; y < canvas.height(); ++y) {
    for (int x = 0; x < canvas.width(); ++x) count += canvas.At(x, y) == color;
  }
  return count;
}

TEST(BenchPlotTest, PngRoundTripKeepsSizeAndPixels) {
  Canvas canvas(37, 21, kWhite);
  canvas.FillRect(2, 3, 6, 8, Rgb{200, 10, 30});  // [2, 6) x [3, 8)
  canvas.Set(36, 20, Rgb{1, 2, 3});
  canvas.Line(0, 20, 10, 20, kBlack);
  const std::string path = TempPath("roundtrip");
  ASSERT_TRUE(WritePng(canvas, path).ok());

  const Image image = ReadPng(path);
  ASSERT_EQ(image.width, 37);
  ASSERT_EQ(image.height, 21);
  EXPECT_EQ(image.At(0, 0), kWhite);
  EXPECT_EQ(image.At(2, 3), (Rgb{200, 10, 30}));
  EXPECT_EQ(image.At(5, 7), (Rgb{200, 10, 30}));
  EXPECT_EQ(image.At(6, 7), kWhite);  // the rectangle is half-open
  EXPECT_EQ(image.At(5, 8), kWhite);
  EXPECT_EQ(image.At(36, 20), (Rgb{1, 2, 3}));
  EXPECT_EQ(image.At(10, 20), kBlack);
  EXPECT_EQ(image.At(11, 20), kWhite);
  std::remove(path.c_str());
}

TEST(BenchPlotTest, WriteToAMissingDirectoryFails) {
  Canvas canvas(4, 4, kWhite);
  const absl::Status status = WritePng(canvas, "/nonexistent-dir/plot.png");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent-dir/plot.png"), std::string::npos);
}

TEST(BenchPlotTest, LinesAreClippedAndDashed) {
  Canvas canvas(10, 10, kWhite);
  canvas.Line(-5, 5, 20, 5, kBlack);  // clipped, not a crash
  EXPECT_EQ(CountColor(canvas, kBlack), 10);
  Canvas dashed(12, 1, kWhite);
  dashed.Line(0, 0, 11, 0, kBlack, 1, 3);  // on 3, off 3
  EXPECT_EQ(dashed.At(0, 0), kBlack);
  EXPECT_EQ(dashed.At(2, 0), kBlack);
  EXPECT_EQ(dashed.At(3, 0), kWhite);
  EXPECT_EQ(dashed.At(6, 0), kBlack);
}

TEST(BenchPlotTest, TextDrawsGlyphs) {
  Canvas canvas(20, 10, kWhite);
  canvas.Text(0, 0, "1", kBlack);
  // '1' is a vertical bar in its middle column, 7 pixels high.
  for (int y = 0; y < 7; ++y) EXPECT_EQ(canvas.At(2, y), kBlack) << "row " << y;
  EXPECT_EQ(Canvas::TextWidth("12"), 11);
  Canvas space(6, 7, kWhite);
  space.Text(0, 0, " ", kBlack);
  EXPECT_EQ(CountColor(space, kBlack), 0);
}

TEST(BenchPlotTest, NiceTicksCoverTheRange) {
  EXPECT_EQ(NiceTicks(0, 97, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(NiceTicks(2, 16, 6), (std::vector<double>{0, 5, 10, 15, 20}));
  const std::vector<double> tenths = NiceTicks(1, 1.6, 6);
  ASSERT_EQ(tenths.size(), 7u);
  for (size_t i = 0; i < tenths.size(); ++i) EXPECT_NEAR(tenths[i], 1 + 0.1 * i, 1e-12);
  const std::vector<double> small = NiceTicks(0, 0.37, 4);
  ASSERT_FALSE(small.empty());
  EXPECT_LE(small.front(), 0.0);
  EXPECT_GE(small.back(), 0.37);
  EXPECT_FALSE(NiceTicks(5, 5, 5).empty());  // one point still gets an axis
}

TEST(BenchPlotTest, ChartDrawsSeriesLegendAndMarkers) {
  const Rgb red = SeriesColor(1), blue = SeriesColor(0);
  Chart chart;
  chart.title = "TTFT";
  chart.x_label = "rate";
  chart.y_label = "ms";
  chart.series = {{"p50", blue, {1, 2, 4}, {10, 12, 30}, false},
                  {"p99", red, {1, 2, 4}, {20, 40, 300}, true}};
  chart.y_markers.push_back({100, Rgb{120, 120, 120}, "SLO"});
  chart.x_markers.push_back({4, Rgb{0, 200, 0}, "explodes"});
  Canvas canvas(400, 300, kWhite);
  DrawChart(chart, 0, 0, 400, 300, &canvas);
  EXPECT_GT(CountColor(canvas, red), 100);
  EXPECT_GT(CountColor(canvas, blue), 100);
  EXPECT_GT(CountColor(canvas, Rgb{120, 120, 120}), 20);
  EXPECT_GT(CountColor(canvas, Rgb{0, 200, 0}), 20);
  EXPECT_GT(CountColor(canvas, kBlack), 300);  // axes, ticks, labels, legend

  const std::string path = TempPath("chart");
  ASSERT_TRUE(WritePng(canvas, path).ok());
  const Image image = ReadPng(path);
  EXPECT_EQ(image.width, 400);
  EXPECT_EQ(image.height, 300);
  EXPECT_EQ(image.rgb.size(), canvas.pixels().size());
  EXPECT_TRUE(image.rgb == canvas.pixels());
  std::remove(path.c_str());
}

TEST(BenchPlotTest, SweepPlotHasTwoPanelsOfTwoSeries) {
  std::vector<RunReport> reports(3);
  for (int i = 0; i < 3; ++i) {
    reports[i].ttft_ms.p50 = 10 * (i + 1);
    reports[i].ttft_ms.p99 = 100 * (i + 1);
    reports[i].tpot_ms.p50 = 5 + i;
    reports[i].tpot_ms.p99 = 8 + 2 * i;
  }
  const std::string path = TempPath("sweep");
  ASSERT_TRUE(WriteSweepPlot(path, {2, 4, 8}, reports, 250, 8).ok());
  const Image image = ReadPng(path);
  ASSERT_GT(image.width, image.height);
  int colors[4] = {0, 0, 0, 0};
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      for (int s = 0; s < 4; ++s) colors[s] += image.At(x, y) == SeriesColor(s);
    }
  }
  for (int s = 0; s < 4; ++s) EXPECT_GT(colors[s], 50) << "series " << s;
  // TTFT on the left half, TPOT on the right.
  int left_tpot = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width / 2; ++x) left_tpot += image.At(x, y) == SeriesColor(2);
  }
  EXPECT_EQ(left_tpot, 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace pagedllm::bench
