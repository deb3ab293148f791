// C++: iostreams, fstreams, strings, containers and algorithms, built with
// clang++ and libc++ for wasm32-wasi (no exceptions: WASI preview1 has no
// unwinding) and with g++ natively.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};

struct Rect : Shape {
    double w, h;
    Rect(double w, double h) : w(w), h(h) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

struct Circle : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.25 * r * r; }
    std::string name() const override { return "circle"; }
};

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: cpp_streams DIR\n";
        return 2;
    }
    const std::string dir = argv[1];
    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 1; i <= 5; i++) {
        shapes.push_back(std::make_unique<Rect>(i, i + 1));
        shapes.push_back(std::make_unique<Circle>(i));
    }
    std::sort(shapes.begin(), shapes.end(),
              [](const auto &a, const auto &b) { return a->area() < b->area(); });
    for (const auto &s : shapes) std::cout << s->name() << " " << s->area() << "\n";

    {
        std::ofstream out(dir + "/words.txt");
        out << "the quick brown fox jumps over the lazy dog the end\n";
        out << "second line with the words\n";
    }
    std::ifstream in(dir + "/words.txt");
    std::map<std::string, int> counts;
    std::string word;
    while (in >> word) counts[word]++;
    for (const auto &[w, n] : counts)
        if (n > 1) std::cout << w << ": " << n << "\n";

    std::ofstream app(dir + "/words.txt", std::ios::app);
    app << "appended\n";
    app.close();
    std::ifstream again(dir + "/words.txt");
    std::string line;
    int lines = 0;
    while (std::getline(again, line)) lines++;
    std::cout << "lines: " << lines << "\n";

    std::ostringstream os;
    os << std::hex << 255 << " " << std::dec << 1.5;
    std::cout << "stringstream: " << os.str() << "\n";
    std::ifstream missing(dir + "/missing.txt");
    std::cout << "missing opens: " << missing.is_open() << "\n";
    std::string input;
    std::getline(std::cin, input);
    std::cout << "stdin: " << input << std::endl;
    return 0;
}
