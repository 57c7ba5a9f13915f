// Test helpers for the expand module: inline tables, a table that fails,
// a temporary folder, and a one-line text form of an expansion's result.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "expand/expand.hpp"
#include "table/table.hpp"

namespace expand_test {

using namespace postern;
using Entries = std::vector<std::pair<std::string, std::string>>;

inline std::unique_ptr<table::Table> map(std::string name, Entries entries) {
    return table::make_inline_table(std::move(name), std::move(entries), true);
}

// The userbase of every test: no dependency on /etc/passwd.
inline std::unique_ptr<table::Table> users() {
    return map("users", {
                            {"bob", "1001:1001:/home/bob"},
                            {"alice", "1002:1002:/home/alice"},
                            {"carol", "1003:1003:/home/carol"},
                            {"root", "0:0:/root"},
                            {"vmail", "2000:2000:/var/vmail"},
                            {"broken", "12:x:/home/broken"},
                        });
}

// A table that cannot answer for one key (or any key when `key` is empty).
class FailingTable final : public table::Table {
public:
    FailingTable(std::string key, Entries entries)
        : Table("failing"), key_(std::move(key)), inner_(map("inner", std::move(entries))) {}
    table::Result lookup(table::Service service, std::string_view key, std::string* value,
                         std::string* error) override {
        if (key_.empty() || key == key_) {
            *error = "backend unreachable";
            return table::Result::TempFail;
        }
        return inner_->lookup(service, key, value, error);
    }
    table::Result for_each(const std::function<bool(std::string_view, std::string_view)>&,
                           std::string* error) override {
        *error = "backend unreachable";
        return table::Result::TempFail;
    }
    bool iterable() const override { return false; }
    bool reload(std::string*) override { return true; }

private:
    std::string key_;
    std::unique_ptr<table::Table> inner_;
};

class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "postern-expand-XXXXXX").string();
        if (::mkdtemp(tmpl.data())) path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string write(const std::string& name, const std::string& text) const {
        std::string p = path_ + "/" + name;
        std::ofstream(p, std::ios::binary) << text;
        return p;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// "user:bob+tag(1001)", "addr:x@y", "file:/p(as 1001)", "cmd:c(as 65534)", in order.
inline std::vector<std::string> describe(const expand::Result& r) {
    using Kind = expand::Destination::Kind;
    std::vector<std::string> out;
    for (const auto& d : r.dests) {
        std::string ext = d.extension.empty() ? "" : "+" + d.extension;
        switch (d.kind) {
        case Kind::User: out.push_back("user:" + d.value + ext + "(" + std::to_string(d.user.uid) + ")"); break;
        case Kind::Address: out.push_back("addr:" + d.value + ext); break;
        case Kind::File: out.push_back("file:" + d.value + "(as " + std::to_string(d.run_as.uid) + ")"); break;
        case Kind::Command: out.push_back("cmd:" + d.value + "(as " + std::to_string(d.run_as.uid) + ")"); break;
        }
    }
    return out;
}

using Strings = std::vector<std::string>;

}  // namespace expand_test
