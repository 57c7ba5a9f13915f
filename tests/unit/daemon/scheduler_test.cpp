// The retry schedule: creation + 10 s x k^2, always in the future.
#include <catch2/catch.hpp>

#include "daemon/scheduler.hpp"

using postern::daemon::next_attempt;

TEST_CASE("retry schedule follows creation + base x k^2") {
    CHECK(next_attempt(1000, 1, 1000) == 1010);
    CHECK(next_attempt(1000, 2, 1011) == 1040);
    CHECK(next_attempt(1000, 3, 1041) == 1090);
    CHECK(next_attempt(1000, 1, 1000, 400) == 1400);
}

TEST_CASE("retry schedule skips slots already past (after a restart)") {
    // Retry 1 would be at 1010, but it is 1100 now: the next free slot is k=4 (1160).
    CHECK(next_attempt(1000, 1, 1100) == 1160);
    CHECK(next_attempt(1000, 0, 1000) == 1010);
}
