// One-user-per-line text (`user item item ...`), at the speed of memory: a branch-free first pass counts the
// users (lines with tokens) and items, a second fills preallocated columns, parsing each token's integer value
// while it scans it. Tokens are separated by the bytes bytes.split() splits on (space, \t, \n, \r, \v, \f);
// lines end at '\n'.
#pragma once
#include <cstdint>

namespace simmine {

inline bool is_space_byte(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Pass 1 (branch-free, vectorised by the compiler): tokens, lines, and whether every token byte is a digit or
// '-' (so the tokens may all be integers). Pass 2 counts users (lines with tokens) and short lines.
struct LinesCount {
    int64_t tokens = 0, lines = 1, users = 0, items = 0, first_short_line = 0;
    bool maybe_int = true;
    bool canonical = true;  // pass 2, integer columns: every token was a canonical integer
};

inline LinesCount count_lines(const uint8_t* data, int64_t n) {
    LinesCount c;
    int64_t tokens = 0, newlines = 0, other = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t b = data[i];
        const int64_t space = is_space_byte(b);
        const int64_t prev_space = i == 0 ? 1 : is_space_byte(data[i - 1]);
        tokens += prev_space & (1 - space);
        newlines += b == '\n';
        other += (1 - space) & ((static_cast<unsigned>(b) - '0') > 9) & (b != '-');
    }
    c.tokens = tokens;
    c.lines = newlines + 1;
    c.maybe_int = other == 0;
    return c;
}

// Pass 2, into columns sized by pass 1 (items: at most the tokens; users: at most the lines): integer columns (per item its value and its user's value; a token that
// is not a canonical integer, -?[1-9][0-9]{0,17} or 0, clears c.canonical) or text columns (per token its
// byte range, per item its user's index).
struct LinesColumns {
    bool text;
    int64_t* item_value;       // integer columns
    int64_t* item_user_value;
    int64_t* item_start;       // text columns
    int32_t* item_len;
    int32_t* item_user;
    int64_t* user_start;
    int32_t* user_len;
};

inline void fill_lines(const uint8_t* data, int64_t n, LinesCount& c, LinesColumns& out) {
    int64_t user = -1, item = 0, user_value = 0, pos = 0, line = 1, on_line = 0;
    bool line_has_user = false, canonical = true;
    while (pos < n) {
        const uint8_t b = data[pos];
        if (b == '\n') {
            if (on_line == 1 && c.first_short_line == 0) c.first_short_line = line;
            line_has_user = false;
            on_line = 0;
            ++line;
            ++pos;
            continue;
        }
        if (is_space_byte(b)) {
            ++pos;
            continue;
        }
        const int64_t start = pos;
        const bool minus = b == '-';
        pos += minus;
        const int64_t first = pos;
        int64_t value = 0;
        bool digits_only = true;
        while (pos < n && !is_space_byte(data[pos])) {
            const unsigned d = static_cast<unsigned>(data[pos]) - '0';
            digits_only &= d <= 9;
            value = value * 10 + d;
            ++pos;
        }
        const int64_t len = pos - start, digits = pos - first;
        if (!out.text) {
            canonical &= digits_only && digits >= 1 && digits <= 18 && !(data[first] == '0' && (digits > 1 || minus));
            if (minus) value = -value;
        }
        ++on_line;
        if (!line_has_user) {
            line_has_user = true;
            ++user;
            if (out.text) {
                out.user_start[user] = start;
                out.user_len[user] = static_cast<int32_t>(len);
            } else {
                user_value = value;
            }
        } else {
            if (out.text) {
                out.item_start[item] = start;
                out.item_len[item] = static_cast<int32_t>(len);
                out.item_user[item] = static_cast<int32_t>(user);
            } else {
                out.item_value[item] = value;
                out.item_user_value[item] = user_value;
            }
            ++item;
        }
    }
    if (on_line == 1 && c.first_short_line == 0) c.first_short_line = line;
    c.canonical = canonical;
    c.users = user + 1;
    c.items = item;
}

}  // namespace simmine
