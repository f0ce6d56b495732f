#pragma once
// The statistics behind every table cell and comparison of the report: the
// mean over seeds with its sample standard deviation, and the paired t-test of
// a DAE-NR variant against its baseline over the seeds both have.

#include <cstdint>
#include <vector>

namespace daenr::reports {

/// Mean and sample standard deviation (divisor n - 1) of a few values.
struct Summary {
  int64_t n = 0;
  double mean = 0;  ///< NaN when n == 0
  double sd = 0;    ///< NaN when n < 2
};

/// Sums in the order given, so that the same values in the same order give the
/// same bits.
Summary summarize(const std::vector<double>& values);

/// Two-sided paired t-test of a - b (equal lengths, element i of each from the
/// same seed): t = mean(d) / (sd(d) / sqrt(n)) with n - 1 degrees of freedom.
struct PairedTest {
  int64_t n = 0;
  double mean_diff = 0;  ///< mean of a - b; NaN when n == 0
  double sd_diff = 0;    ///< sample sd of a - b; NaN when n < 2
  double t = 0;          ///< NaN when n < 2 or sd_diff == 0
  double p = 0;          ///< two-sided; NaN when t is
};

/// Throws std::invalid_argument when the lengths differ.
PairedTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b);

/// P(|T| >= |t|) for Student's t with `df` > 0 degrees of freedom.
double students_t_two_sided_p(double t, double df);

}  // namespace daenr::reports
