// The batch a delivery agent starts with (delivery/agent_batch.hpp): what
// the launcher writes, the agent reads back field for field, and every
// malformed or oversized batch is refused with its reason.
#include "delivery/agent_batch.hpp"

#include <catch2/catch.hpp>

namespace first_batch = postern::delivery::first_batch;
using postern::util::encode_frame;

namespace {

first_batch::Item item(int fd, std::string path, bool create = false) {
    first_batch::Item i;
    i.fd = fd;
    i.create_mbox = create;
    i.fields = {"a@example.org", "b+x@example.com", "b@example.com", std::move(path),
                "0123abcd",      "RET=HDRS",        "NOTIFY=NEVER"};
    return i;
}

std::string refusal(const std::string& bytes) {
    std::vector<first_batch::Item> out;
    std::string why;
    CHECK_FALSE(first_batch::decode(bytes, &out, &why));
    return why;
}

}  // namespace

TEST_CASE("agent batch: encoded and decoded, every field and flag survives, any byte in a field") {
    std::vector<first_batch::Item> in = {item(3, "/var/mail/b", true), item(4, std::string("|a\0b\r\n,:", 9))};
    in[1].fields.sender = "";
    std::vector<first_batch::Item> out;
    std::string why;
    REQUIRE(first_batch::decode(first_batch::encode(in), &out, &why));
    REQUIRE(out.size() == 2);
    for (size_t k = 0; k < 2; ++k) {
        CHECK(out[k].fd == in[k].fd);
        CHECK(out[k].create_mbox == in[k].create_mbox);
        CHECK(out[k].fields.sender == in[k].fields.sender);
        CHECK(out[k].fields.rcpt == in[k].fields.rcpt);
        CHECK(out[k].fields.dest == in[k].fields.dest);
        CHECK(out[k].fields.path == in[k].fields.path);
        CHECK(out[k].fields.msgid == in[k].fields.msgid);
        CHECK(out[k].fields.mail_params == in[k].fields.mail_params);
        CHECK(out[k].fields.rcpt_params == in[k].fields.rcpt_params);
    }
    CHECK(first_batch::encode({item(3, "/x")}) ==
          encode_frame({"first-batch", "3", "0", "a@example.org", "b+x@example.com", "b@example.com", "/x", "0123abcd",
                        "RET=HDRS", "NOTIFY=NEVER"}));
}

TEST_CASE("agent batch: malformed batches are refused, with the reason") {
    auto fields = [](std::string fd, std::string flag) {
        return std::vector<std::string>{fd, flag, "", "r", "d", "/p", "m", "", ""};
    };
    auto batch = [&](std::vector<std::vector<std::string>> items, std::string tag = "first-batch") {
        std::vector<std::string> f = {tag};
        for (auto& i : items) f.insert(f.end(), i.begin(), i.end());
        return encode_frame(f);
    };
    CHECK(refusal("") == "malformed batch");
    CHECK(refusal("garbage") == "malformed batch");
    CHECK(refusal(batch({fields("3", "0")}).substr(1)) == "malformed batch");
    CHECK(refusal(batch({fields("3", "0")}, "batch")) == "malformed batch");
    CHECK(refusal(batch({fields("3", "0")}) + batch({fields("4", "0")})) == "malformed batch");
    CHECK(refusal(encode_frame({"first-batch", "3", "0", "", "r"})) == "malformed batch");
    CHECK(refusal(batch({})) == "batch of 0 deliveries (want 1 to 128)");
    std::vector<std::vector<std::string>> many;
    for (int k = 0; k < 129; ++k) many.push_back(fields(std::to_string(3 + k), "0"));
    CHECK(refusal(batch(many)) == "batch of 129 deliveries (want 1 to 128)");
    many.pop_back();
    std::vector<first_batch::Item> out;
    std::string why;
    CHECK(first_batch::decode(batch(many), &out, &why));
    CHECK(out.size() == 128);
    for (const char* fd : {"0", "1", "2", "03", "-3", "+3", "3 ", "x", "", "1000000"})
        CHECK(refusal(batch({fields(fd, "0")})) == "bad message descriptor \"" + std::string(fd) + "\" in delivery 0");
    CHECK(refusal(batch({fields("3", "0"), fields("3", "0")})) == "bad message descriptor \"3\" in delivery 1");
    for (const char* flag : {"", "2", "true", "00"})
        CHECK(refusal(batch({fields("3", flag)})) == "bad mailbox flag \"" + std::string(flag) + "\" in delivery 0");
    CHECK(refusal(std::string(first_batch::kMaxBytes + 1, '1')) == "batch longer than 1048576 bytes");
}
