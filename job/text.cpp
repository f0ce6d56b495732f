#include "job/text.h"

#include <algorithm>
#include <fmt/format.h>

namespace daenr::job {

std::string first_line(std::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // One row of the dynamic-programming table at a time.
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = 3;  // only near misses: anything further is another word, not a typo
  for (const auto& n : names) {
    const auto d = edit_distance(word, n);
    if (d < best_d) best_d = d, best = n;
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& names,
                         std::string_view prefix) {
  const std::string best = nearest(word, names);
  return best.empty() ? "" : fmt::format(" (did you mean '{}{}'?)", prefix, best);
}

}  // namespace daenr::job
