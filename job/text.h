#pragma once
// Small text helpers that messages all over daenr share: one copy each.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace daenr::job {

/// The first line of `text`: an exception's what() reaches a log, a result row or the MPI wire
/// as one line, whatever a library below put after it.
std::string first_line(std::string_view text);

/// Levenshtein distance (insert, delete, substitute; each costs 1).
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The nearest of `names` to a misspelt `word` when it is a near miss (distance <= 2), else
/// empty. Ties go to the first of `names`, so the suggestion does not depend on hashing.
std::string nearest(std::string_view word, const std::vector<std::string>& names);

/// " (did you mean '<prefix><name>'?)" for the nearest of `names`, or "" when none is near.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& names,
                         std::string_view prefix = "");

}  // namespace daenr::job
