#include "bench/lab/report.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <stdexcept>

namespace lab {
namespace {

std::string run_command(const char* cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd, "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

Meta make_meta(const std::string& program, const std::string& device, int threads) {
  Meta m;
  m.program = program;
  m.device = device;
  m.threads = threads;
  char buf[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  m.date = buf;
  m.commit = run_command("git rev-parse --short HEAD 2>/dev/null");
  if (m.commit.empty()) m.commit = "unknown";
  else if (!run_command("git status --porcelain --untracked-files=no 2>/dev/null").empty()) m.commit += "+dirty";
  m.load_before = load_average();
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  m.omp_wait_policy = policy ? policy : "unset";
  return m;
}

nlohmann::json Meta::to_json() const {
  return {{"program", program}, {"device", device},           {"date", date},          {"commit", commit},
          {"threads", threads}, {"load_before", load_before}, {"load_after", load_after},
          {"omp_wait_policy", omp_wait_policy}};
}

std::string md_table(const Row& header, const std::vector<Row>& rows) {
  auto line = [](const Row& r) {
    std::string s = "|";
    for (const std::string& c : r) s += " " + c + " |";
    return s + "\n";
  };
  std::string s = line(header) + "|";
  for (size_t i = 0; i < header.size(); ++i) s += "---|";
  s += "\n";
  for (const Row& r : rows) s += line(r);
  return s;
}

std::string write_results(const std::string& dir, const std::string& stem, Meta meta, nlohmann::json results,
                          const std::string& md_body) {
  meta.load_after = load_average();
  ::mkdir(dir.c_str(), 0755);
  const std::string json_path = dir + "/" + stem + ".json", md_path = dir + "/" + stem + ".md";
  nlohmann::json doc = meta.to_json();
  doc["results"] = std::move(results);
  std::ofstream(json_path) << doc.dump(1) << "\n";
  std::ofstream md(md_path);
  md << "# " << meta.program << "\n\n"
     << "Device: " << meta.device << "  \n"
     << "Date: " << meta.date << ", commit " << meta.commit << ", " << meta.threads << " threads, OMP_WAIT_POLICY "
     << meta.omp_wait_policy << "  \n"
     << "Load average (1/5/15 min) before: " << meta.load_before << ", after: " << meta.load_after
     << " (other work shares this machine; figures taken under load are not comparable)\n\n"
     << md_body;
  if (!md) throw std::runtime_error("cannot write " + md_path);
  return json_path + " and " + md_path;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace lab
