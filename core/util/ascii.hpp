// util/ascii.hpp — ASCII character classes and case folding for protocol
// text. They are part of the plugin SDK, so that the daemon and every plugin
// share one definition: see postern/support/ascii.hpp.
#pragma once

#include "postern/support/ascii.hpp"
