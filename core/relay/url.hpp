// relay/url.hpp — relay host URLs (RelayUrl, parse_relay_url). The relay
// plugin parses them too, so they live in the plugin SDK: see
// postern/support/relay_url.hpp for the grammar and the error texts.
#pragma once

#include "postern/support/relay_url.hpp"
