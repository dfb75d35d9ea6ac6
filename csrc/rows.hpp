// Row orders of a log: users grouped, time ascending within a user, ties in file order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace simmine {

// Whether rows already run user by user (codes non-decreasing) with times non-decreasing within a user.
template <class Time>
bool in_user_time_order(const int64_t* users, const Time* times, int64_t n) {
    for (int64_t p = 1; p < n; ++p) {
        if (users[p] < users[p - 1]) return false;
        if (times && users[p] == users[p - 1] && times[p] < times[p - 1]) return false;
    }
    return true;
}

// The stable counting-sort order of n codes in [0, vocab) into order (a CSR's transpose: positions
// ascending within each code); returns where each code's run starts, vocab + 1 offsets.
template <class Code>
std::vector<int64_t> counting_order(const Code* codes, int64_t n, int64_t vocab, int64_t* order) {
    std::vector<int64_t> start(static_cast<std::size_t>(vocab) + 1, 0);
    for (int64_t p = 0; p < n; ++p) ++start[codes[p] + 1];
    for (int64_t v = 0; v < vocab; ++v) start[v + 1] += start[v];
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t p = 0; p < n; ++p) order[next[codes[p]]++] = p;
    return start;
}

// The stable order by (user, time) = NumPy's lexsort((times, users)): a counting sort by user code in
// [0, n_users), then a stable sort by time of each user's run that is not already ascending.
template <class Time>
void user_time_order(const int64_t* users, const Time* times, int64_t n, int64_t n_users, int64_t* order) {
    const std::vector<int64_t> start = counting_order(users, n, n_users, order);
    if (!times) return;
    for (int64_t u = 0; u < n_users; ++u) {
        int64_t* first = order + start[u];
        int64_t* last = order + start[u + 1];
        bool sorted = true;
        for (int64_t* q = first + 1; q < last && sorted; ++q) sorted = times[*q] >= times[*(q - 1)];
        if (!sorted) std::stable_sort(first, last, [&](int64_t a, int64_t b) { return times[a] < times[b]; });
    }
}

// Codes of integer ids in order of first appearance, through a table over [lo, lo + span): codes[p] is the
// number of distinct ids met before ids[p]'s first row; first[c] is the row where code c first appears.
inline int64_t first_appearance(const int64_t* ids, int64_t n, int64_t lo, int64_t span, int64_t* codes,
                                int64_t* first) {
    std::vector<int64_t> code_of(static_cast<size_t>(span), -1);
    int64_t next = 0;
    for (int64_t p = 0; p < n; ++p) {
        int64_t& c = code_of[static_cast<size_t>(ids[p] - lo)];
        if (c < 0) {
            first[next] = p;
            c = next++;
        }
        codes[p] = c;
    }
    return next;
}

}  // namespace simmine
