#include <cstdio>
#include <cstring>
int main(int argc, char** argv) {
  std::printf("c3semiseg: training is not built yet\n");
  return argc > 1 && std::strcmp(argv[1], "--help") == 0 ? 0 : 1;
}
