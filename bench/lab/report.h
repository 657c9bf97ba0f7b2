// Results files of the benchmark programs: one JSON document and one Markdown table per run,
// both stamped with the device, the date (UTC), the commit and the machine load, written to
// <dir>/<stem>.json and <dir>/<stem>.md (bench/results/ by default).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lab {

struct Meta {
  std::string program, device, date, commit, load_before, load_after;
  std::string omp_wait_policy;  // OMP_WAIT_POLICY as the program saw it ("unset": libgomp spins a while)
  int threads = 0;
  nlohmann::json to_json() const;
};
// Fills date, commit ("git rev-parse --short HEAD", "+dirty" with uncommitted changes) and
// the load average now; load_after is set by write_results.
Meta make_meta(const std::string& program, const std::string& device, int threads);
std::string load_average();  // the three load averages of /proc/loadavg

using Row = std::vector<std::string>;
std::string md_table(const Row& header, const std::vector<Row>& rows);

// Writes both files; `md_body` is the Markdown after the header that write_results adds.
// Returns the two paths written, for the log.
std::string write_results(const std::string& dir, const std::string& stem, Meta meta, nlohmann::json results,
                          const std::string& md_body);

std::string fmt(const char* f, double v);  // printf one number

}  // namespace lab
