// tables/db/makemap.hpp — postern-makemap(8): build the Berkeley DB maps that
// `db:` tables read, and newaliases.
//
// The program is this one function, in a static library (postern_makemap) so
// that postern-makemap's main and `posternctl makemap ...` run the same code.
#pragma once

namespace postern::makemap {

// Runs makemap, or newaliases when the base name of argv[0] is "newaliases".
// argv[0] also names the program in messages. Returns the exit status: 0
// done, 1 failed, 2 bad usage.
int main(int argc, char** argv);

}  // namespace postern::makemap
