#include "reports/stats.h"

#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace daenr::reports {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int64_t>(values.size());
  if (s.n == 0) {
    s.mean = s.sd = kNaN;
    return s;
  }
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / double(s.n);
  if (s.n < 2) {
    s.sd = kNaN;
    return s;
  }
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(squares / double(s.n - 1));
  return s;
}

double students_t_two_sided_p(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return 0;
  const boost::math::students_t dist(df);
  return std::min(1.0, 2 * boost::math::cdf(boost::math::complement(dist, std::fabs(t))));
}

PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) {
    throw std::invalid_argument("paired_t_test: the two samples differ in length");
  }
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  const Summary s = summarize(d);
  PairedTest out;
  out.n = s.n;
  out.mean_diff = s.mean;
  out.sd_diff = s.sd;
  // Identical differences (sd 0) leave t undefined: no spread to judge by.
  if (s.n < 2 || !(s.sd > 0)) {
    out.t = out.p = kNaN;
    return out;
  }
  out.t = s.mean / (s.sd / std::sqrt(double(s.n)));
  out.p = students_t_two_sided_p(out.t, double(s.n - 1));
  return out;
}

}  // namespace daenr::reports
