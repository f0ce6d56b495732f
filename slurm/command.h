#pragma once
// Runs a command (sbatch, squeue) without a shell, so that no path or name
// is ever re-parsed by one, and captures what it prints.

#include <string>
#include <vector>

namespace daenr::slurm {

struct CommandResult {
  int exit_code = 0;  ///< 128 + signal number if it was killed
  std::string out, err;
};

/// Runs argv[0] (looked up on PATH) with `input` on its stdin. Throws
/// SlurmError naming the program if it cannot be started (not installed).
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "");

}  // namespace daenr::slurm
