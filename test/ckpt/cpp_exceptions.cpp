// C++ exceptions across frames, for checkpoints taken anywhere in code
// that throws, unwinds and catches (built with -fwasm-exceptions by
// build_cpp_eh.sh; cpp_eh_runtime.cpp supplies the C++ ABI runtime).
//
// Sixteen rounds of five parts, each on other inputs; then a line per
// part and a checksum of everything:
//  1. a recursive-descent evaluator of generated expressions that throws
//     custom exceptions (with payloads) from deep in the recursion, caught
//     by derived and base type, annotated and rethrown with `throw;`,
//     retried from inside a handler (nested try), with RAII frame guards
//     counting the destructors that run during unwinding;
//  2. an N-queens search that ends by throwing the solution found (a
//     payload with an array) from the bottom of the recursion, and a
//     budgeted search abandoned by throwing an int;
//  3. a throw storm: tens of thousands of throws of several types through
//     a few frames, caught by type, by std::exception&, by catch (...),
//     with a destructor that calls a function while unwinding;
//  4. constructors that throw: members already built are destroyed;
//  5. an exception thrown and caught while another one is being handled,
//     then the first one rethrown.
// Handlers run loops and calls (checkpoints can land while an exception
// is caught). The output is deterministic and the same built natively
// (`clang++ -O2`, `g++ -O2`): no library exception message is printed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>

#if defined(__GNUC__) && !defined(__clang__)
// DivByZero is caught by value on purpose (a copy made by the handler).
#pragma GCC diagnostic ignored "-Wcatch-value"
#endif

namespace {

uint64_t checksum = 0xcbf29ce484222325ull;

void mix(uint64_t v) {
    for (int i = 0; i < 8; i++) {
        checksum ^= (v >> (8 * i)) & 0xff;
        checksum *= 0x100000001b3ull;
    }
}

// Deterministic pseudo-random numbers (64-bit LCG, upper bits).
struct Rng {
    uint64_t s;
    uint32_t next() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(s >> 33);
    }
    uint32_t below(uint32_t n) { return next() % n; }
};

// Constructions and destructions of guards: equal once everything
// unwound, whatever was thrown.
long long guards_made = 0;
long long guards_gone = 0;
long long guards_live = 0;

struct Guard {
    int depth;
    explicit Guard(int d) : depth(d) {
        guards_made++;
        guards_live++;
    }
    ~Guard() {
        guards_gone++;
        guards_live--;
        mix(uint64_t(depth) * 31 + uint64_t(guards_live));
    }
    Guard(const Guard &) = delete;
    Guard &operator=(const Guard &) = delete;
};

// --- exception types ---------------------------------------------------

struct EvalError : std::exception {
    int pos;
    long long value;
    EvalError(int p, long long v) : pos(p), value(v) {}
    const char *what() const noexcept override { return "eval error"; }
    virtual int code() const { return 1; }
};

struct DivByZero : EvalError {
    DivByZero(int p, long long numerator) : EvalError(p, numerator) {}
    const char *what() const noexcept override { return "division by zero"; }
    int code() const override { return 2; }
};

struct Overflow : EvalError {
    int depth;
    Overflow(int p, long long v, int d) : EvalError(p, v), depth(d) {}
    const char *what() const noexcept override { return "overflow"; }
    int code() const override { return 3; }
};

// Not an EvalError: caught elsewhere.
struct ParseError : std::runtime_error {
    int pos;
    char got;
    int line = -1;
    ParseError(int p, char c) : std::runtime_error("parse error"), pos(p), got(c) {}
};

// Thrown and caught by value: a non-trivial copy constructor counts copies.
long long payload_copies = 0;
struct Payload {
    int tag;
    int data[6];
    explicit Payload(int t) : tag(t) {
        for (int i = 0; i < 6; i++) data[i] = t * (i + 1);
    }
    Payload(const Payload &o) : tag(o.tag) {
        payload_copies++;
        std::memcpy(data, o.data, sizeof data);
    }
};

// --- part 1: expressions -----------------------------------------------

const long long LIMIT = 1000000000000ll;

struct Parser {
    const char *s;
    int pos = 0;
    int depth = 0;
    int max_depth;

    char peek() const { return s[pos]; }

    [[noreturn]] void unexpected() { throw ParseError(pos, s[pos]); }

    long long check(long long v) {
        if (v > LIMIT || v < -LIMIT) throw Overflow(pos, v, depth);
        return v;
    }

    long long number() {
        long long v = 0;
        if (peek() < '0' || peek() > '9') unexpected();
        while (peek() >= '0' && peek() <= '9') v = check(v * 10 + (s[pos++] - '0'));
        return v;
    }

    long long factor() {
        Guard g(depth);
        if (++depth > max_depth) throw Overflow(pos, 0, depth);
        long long v;
        if (peek() == '(') {
            pos++;
            v = expr();
            if (peek() != ')') unexpected();
            pos++;
        } else if (peek() == '-') {
            pos++;
            v = check(-factor());
        } else if (peek() == 'f') {
            // f(a,b) = a*a - b, through another level of calls
            pos++;
            if (peek() != '(') unexpected();
            pos++;
            long long a = expr();
            if (peek() != ',') unexpected();
            pos++;
            long long b = expr();
            if (peek() != ')') unexpected();
            pos++;
            v = check(check(a * a) - b);
        } else {
            v = number();
        }
        depth--;
        return v;
    }

    long long term() {
        Guard g(depth);
        long long v = factor();
        while (peek() == '*' || peek() == '/' || peek() == '%') {
            char op = s[pos++];
            int at = pos;
            long long r = factor();
            if (op == '*') {
                v = check(v * r);
            } else {
                if (r == 0) throw DivByZero(at, v);
                v = op == '/' ? v / r : v % r;
            }
        }
        return v;
    }

    long long expr() {
        Guard g(depth);
        long long v = term();
        while (peek() == '+' || peek() == '-') {
            char op = s[pos++];
            long long r = term();
            v = check(op == '+' ? v + r : v - r);
        }
        return v;
    }

    long long whole() {
        long long v = expr();
        if (peek() != '\0') unexpected();
        return v;
    }
};

// Writes a random expression of nesting at most `depth` into `out`.
void gen(Rng &r, char *&out, const char *end, int depth) {
    if (end - out < 40) {
        *out++ = '1';
        return;
    }
    uint32_t k = depth > 0 ? r.below(10) : 0;
    if (k < 4) {
        int n = int(r.below(6));
        if (n == 0) {
            *out++ = '0';
        } else {
            out += std::snprintf(out, size_t(end - out), "%u", r.below(1000) + 1);
        }
    } else if (k < 6) {
        *out++ = '(';
        gen(r, out, end, depth - 1);
        static const char ops[] = "+-*/%";
        *out++ = ops[r.below(5)];
        gen(r, out, end, depth - 1);
        *out++ = ')';
    } else if (k < 7) {
        *out++ = '-';
        gen(r, out, end, depth - 1);
    } else if (k < 8) {
        *out++ = 'f';
        *out++ = '(';
        gen(r, out, end, depth - 1);
        *out++ = ',';
        gen(r, out, end, depth - 1);
        *out++ = ')';
    } else {
        gen(r, out, end, depth - 1);
        static const char ops[] = "+*-/";
        *out++ = ops[r.below(4)];
        gen(r, out, end, depth - 1);
    }
}

struct ExprStats {
    long long ok = 0, div0 = 0, overflow = 0, parse = 0, retried = 0, retry_failed = 0;
    long long sum = 0;
};

// Called only from a handler, before it rethrows: work done while an
// exception is caught, and a function whose entry is a checkpoint trigger
// inside a handler (`mvvm-checkpoint -f handler_digest`; C linkage for a
// plain name in the name section, noinline so that it stays a function).
extern "C" __attribute__((noinline)) uint64_t handler_digest(const char *s, int upto) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < upto && s[i]; i++) h = (h ^ uint8_t(s[i])) * 1099511628211ull;
    return h;
}

// Evaluates; a ParseError leaves annotated with the line (`throw;`), a
// DivByZero is retried with every zero divisor made a one.
long long evaluate_line(char *text, int line, int max_depth, ExprStats &st) {
    try {
        Parser p{text};
        p.max_depth = max_depth;
        return p.whole();
    } catch (ParseError &e) {
        e.line = line;
        mix(handler_digest(text, e.pos));
        throw;
    } catch (DivByZero e) { // by value: a copy
        st.div0++;
        mix(uint64_t(e.pos) ^ uint64_t(e.value));
        // Nested try inside the handler: retry without zero divisors.
        for (char *c = text; *c; c++)
            if (*c == '0' && (c == text || c[-1] < '0' || c[-1] > '9') && (c[1] < '0' || c[1] > '9')) *c = '1';
        try {
            Parser p{text};
            p.max_depth = max_depth;
            long long v = p.whole();
            st.retried++;
            return v;
        } catch (const EvalError &again) {
            st.retry_failed++;
            mix(uint64_t(again.code()));
            throw; // the second exception, out of the first's handler
        }
    }
}

ExprStats expr_stats;

void part_expressions(int round) {
    ExprStats &st = expr_stats;
    Rng r{12345u + uint64_t(round)};
    static char buf[4096];
    for (int line = 0; line < 5000; line++) {
        char *out = buf;
        gen(r, out, buf + sizeof buf, 3 + int(r.below(6)));
        *out = '\0';
        // Sometimes garbage: parse errors from deep in the recursion.
        if (r.below(8) == 0) {
            size_t n = size_t(out - buf);
            buf[r.below(uint32_t(n))] = "x)(,"[r.below(4)];
        }
        int max_depth = r.below(4) == 0 ? 6 : 64;
        try {
            long long v = evaluate_line(buf, line, max_depth, st);
            st.ok++;
            st.sum += v;
            mix(uint64_t(v));
        } catch (const ParseError &e) {
            st.parse++;
            mix(uint64_t(e.line) * 1000 + uint64_t(e.pos) + uint64_t(uint8_t(e.got)));
        } catch (const EvalError &e) {
            if (e.code() == 3) st.overflow++;
            mix(uint64_t(e.code()) * 7 + uint64_t(e.pos));
            if (const Overflow *o = dynamic_cast<const Overflow *>(&e)) mix(uint64_t(o->depth));
        }
    }
    mix(uint64_t(st.sum));
}

// --- part 2: search ------------------------------------------------------

struct Found {
    int n;
    int cols[16];
    long long nodes;
};

struct Queens {
    int n;
    int skip; // solutions to pass over before throwing
    long long nodes = 0;
    int cols[16];
    bool col_used[16] = {};
    bool d1[32] = {};
    bool d2[32] = {};
    long long budget;

    void place(int row) {
        Guard g(row);
        if (++nodes > budget) throw int(row);
        if (row == n) {
            if (skip-- == 0) {
                Found f{n, {}, nodes};
                std::memcpy(f.cols, cols, sizeof cols);
                throw f;
            }
            return;
        }
        for (int c = 0; c < n; c++) {
            if (col_used[c] || d1[row + c] || d2[row - c + n]) continue;
            col_used[c] = d1[row + c] = d2[row - c + n] = true;
            cols[row] = c;
            place(row + 1);
            col_used[c] = d1[row + c] = d2[row - c + n] = false;
        }
    }
};

long long found = 0, exhausted = 0, out_of_budget = 0, total_nodes = 0;
uint64_t boards = 0;

void part_search(int round) {
    for (int k = 0; k < 40; k++) {
        int i = round * 40 + k;
        int n = 6 + i % 5;
        Queens q{n, i * 7 % 23};
        q.budget = i % 6 == 5 ? 150 + i % 200 : 1000000;
        try {
            q.place(0);
            exhausted++; // fewer solutions than `skip`
        } catch (const Found &f) {
            found++;
            for (int i = 0; i < f.n; i++) boards = boards * 31 + uint64_t(f.cols[i]);
            mix(uint64_t(f.nodes));
        } catch (int row) {
            out_of_budget++;
            mix(uint64_t(row));
        }
        total_nodes += q.nodes;
    }
    mix(boards);
}

// --- part 3: throw storm -------------------------------------------------

struct Small {
    int v;
};

long long unwind_cleanups = 0;

// Called only by the destructor of an armed Unwinding, that is while an
// exception unwinds storm_throw's frame: its cleanup code runs (a legacy
// `catch_all` body before its `rethrow`, or, exnref form, code between a
// `catch_all_ref` and its `throw_ref`, the exnref in a local). C linkage:
// `-f unwind_cleanup` checkpoints in the middle of unwinding.
extern "C" __attribute__((noinline)) void unwind_cleanup(int i) {
    unwind_cleanups++;
    mix(uint64_t(i) * 0x9e3779b97f4a7c15ull);
}

struct Unwinding {
    int i;
    bool armed = false;
    ~Unwinding() {
        if (armed) unwind_cleanup(i);
    }
};

__attribute__((noinline)) void storm_throw(int i, int kind) {
    Unwinding u{i};
    Guard g(i & 7);
    u.armed = kind < 5; // each case below throws
    switch (kind) {
    case 0: throw Small{i};
    case 1: throw DivByZero(i, i * 3);
    case 2: throw Payload(i);
    case 3: throw std::out_of_range("storm");
    case 4: throw i;
    default: break;
    }
}

__attribute__((noinline)) int storm_middle(int i, int kind, int depth) {
    Guard g(depth);
    if (depth > 0) return storm_middle(i, kind, depth - 1) + 1;
    storm_throw(i, kind);
    return 0;
}

__attribute__((noinline)) long long storm_catch_some(int i, int kind) {
    try {
        return storm_middle(i, kind, i % 4);
    } catch (const Small &s) {
        return s.v;
    } catch (Payload p) {
        long long t = 0;
        for (int k = 0; k < 6; k++) t += p.data[k];
        return t;
    }
}

long long by_small = 0, by_payload = 0, by_std = 0, by_any = 0, none = 0;
long long storm_total = 0;

void part_storm(int round) {
    long long &total = storm_total;
    Rng r{777u + uint64_t(round)};
    for (int i = 0; i < 20000; i++) {
        int kind = int(r.below(6));
        try {
            long long v = storm_catch_some(i, kind);
            if (kind == 0) by_small++;
            else if (kind == 2) by_payload++;
            else none++;
            total += v;
        } catch (const std::exception &e) {
            by_std++;
            total += e.what()[0] == 'd' ? 2 : 3; // own messages only
            if (const DivByZero *d = dynamic_cast<const DivByZero *>(&e)) total += d->value;
        } catch (...) {
            by_any++;
            total += 1;
        }
    }
    mix(uint64_t(total));
}

// --- part 4: constructors that throw --------------------------------------

long long parts_built = 0, parts_destroyed = 0;

struct Part {
    int id;
    explicit Part(int i) : id(i) {
        if (i % 5 == 4) throw Small{i};
        parts_built++;
    }
    ~Part() {
        parts_destroyed++;
        mix(uint64_t(id));
    }
};

struct Machine {
    Guard g;
    Part a, b, c;
    explicit Machine(int base) : g(base), a(base), b(base + 1), c(base + 2) {}
};

long long machines_made = 0, machines_failed = 0;

void part_constructors(int round) {
    long long &made = machines_made, &failed = machines_failed;
    for (int k = 0; k < 3000; k++) {
        int i = k + round * 7;
        try {
            Machine m(i);
            made++;
        } catch (const Small &s) {
            failed++;
            mix(uint64_t(s.v));
        }
    }
}

// --- part 5: exceptions while handling exceptions ---------------------------

// Called only from a handler (C linkage: `-f inner_failure` checkpoints
// while that handler's exception is caught).
extern "C" __attribute__((noinline)) void inner_failure(int i) {
    Guard g(i);
    throw Overflow(i, i * 11, 3);
}

__attribute__((noinline)) void handle_then_rethrow(int i) {
    try {
        throw EvalError(i, i);
    } catch (EvalError &outer) {
        // Another exception thrown and caught while `outer` is handled.
        try {
            inner_failure(i);
        } catch (const Overflow &o) {
            outer.value += o.value;
        }
        if (i % 3 == 0) throw; // `outer`, after the inner one ended
    }
}

long long rethrown = 0;
long long rethrown_values = 0;

void part_nested(int round) {
    long long &values = rethrown_values;
    for (int k = 0; k < 4000; k++) {
        int i = k + round * 4000;
        try {
            handle_then_rethrow(i);
        } catch (const EvalError &e) {
            rethrown++;
            values += e.value;
        }
    }
    mix(uint64_t(values));
}

} // namespace

// Rounds of the five parts, each round with other inputs.
const int ROUNDS = 16;

int main() {
    for (int round = 0; round < ROUNDS; round++) {
        part_expressions(round);
        part_search(round);
        part_storm(round);
        part_constructors(round);
        part_nested(round);
    }
    const ExprStats &st = expr_stats;
    std::printf("expressions: ok %lld sum %lld div0 %lld (retried %lld, failed again %lld) overflow %lld parse %lld\n",
                st.ok, st.sum, st.div0, st.retried, st.retry_failed, st.overflow, st.parse);
    std::printf("search: found %lld exhausted %lld out of budget %lld nodes %lld boards %016llx\n", found, exhausted,
                out_of_budget, total_nodes, (unsigned long long)boards);
    std::printf("storm: small %lld payload %lld std %lld any %lld none %lld total %lld copies %lld cleanups %lld\n",
                by_small, by_payload, by_std, by_any, none, storm_total, payload_copies, unwind_cleanups);
    std::printf("constructors: made %lld failed %lld parts built %lld destroyed %lld\n", machines_made, machines_failed,
                parts_built, parts_destroyed);
    std::printf("nested: rethrown %lld values %lld\n", rethrown, rethrown_values);
    std::printf("guards: made %lld gone %lld live %lld\n", guards_made, guards_gone, guards_live);
    mix(uint64_t(guards_made));
    std::printf("checksum %016llx\n", (unsigned long long)checksum);
    return guards_live == 0 ? 0 : 1;
}
