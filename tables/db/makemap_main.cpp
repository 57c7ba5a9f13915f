// tables/db/makemap_main.cpp — the postern-makemap program (and newaliases,
// when installed or linked under that name); the code is makemap.cpp's.
#include "makemap.hpp"

int main(int argc, char** argv) { return postern::makemap::main(argc, argv); }
