#include "completion/language.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace codepilot::completion {
namespace {

struct Entry {
    Language language;
    std::vector<std::string> aliases;     // other language ids
    std::vector<std::string> extensions;  // without the dot, lower case
};

const std::vector<Entry>& table() {
    // Stop words are line starts at the cursor's indentation or less that begin a new
    // top-level construct: a completion should not run into the next definition.
    static const std::vector<Entry> entries = {
        {{"python", "#", "", "", true, {"def ", "class ", "if __name__", "@", "import ", "from "}},
         {"py", "python3"}, {"py", "pyi", "pyw"}},
        {{"javascript", "//", "", "", false, {"function ", "class ", "export ", "import ", "const ", "let "}},
         {"js", "javascriptreact", "jsx", "node"}, {"js", "jsx", "mjs", "cjs"}},
        {{"typescript", "//", "", "", false, {"function ", "class ", "export ", "import ", "interface ", "type "}},
         {"ts", "typescriptreact", "tsx"}, {"ts", "tsx", "mts", "cts"}},
        {{"java", "//", "", "", false, {"public ", "private ", "protected ", "class ", "import ", "package "}},
         {}, {"java"}},
        {{"kotlin", "//", "", "", false, {"fun ", "class ", "object ", "import ", "package "}}, {"kt"}, {"kt", "kts"}},
        {{"scala", "//", "", "", false, {"def ", "class ", "object ", "trait ", "import "}}, {}, {"scala", "sc"}},
        {{"go", "//", "", "", false, {"func ", "type ", "import ", "package ", "var ", "const "}}, {"golang"}, {"go"}},
        {{"rust", "//", "", "", false, {"fn ", "pub ", "impl ", "struct ", "enum ", "mod ", "use ", "#["}},
         {"rs"}, {"rs"}},
        {{"c", "//", "", "", false, {"#include", "#define", "int ", "void ", "static ", "struct "}}, {}, {"c", "h"}},
        {{"cpp", "//", "", "", false, {"#include", "#define", "namespace ", "class ", "template", "struct "}},
         {"c++", "cuda-cpp"}, {"cpp", "cc", "cxx", "hpp", "hh", "hxx", "cu", "cuh", "ipp"}},
        {{"csharp", "//", "", "", false, {"public ", "private ", "class ", "namespace ", "using "}}, {"cs", "c#"}, {"cs"}},
        {{"php", "//", "", "", false, {"function ", "class ", "public ", "private ", "namespace ", "use "}}, {}, {"php"}},
        {{"ruby", "#", "", "", false, {"def ", "class ", "module ", "require "}}, {"rb"}, {"rb", "rake", "gemspec"}},
        {{"swift", "//", "", "", false, {"func ", "class ", "struct ", "enum ", "import ", "extension "}}, {}, {"swift"}},
        {{"objective-c", "//", "", "", false, {"@interface", "@implementation", "#import", "- (", "+ ("}},
         {"objc", "objective-cpp"}, {"m", "mm"}},
        {{"shellscript", "#", "", "", false, {"function ", "#!/"}}, {"bash", "sh", "shell", "zsh"}, {"sh", "bash", "zsh"}},
        {{"powershell", "#", "", "", false, {"function ", "param("}}, {"ps1"}, {"ps1", "psm1"}},
        {{"sql", "--", "", "", false, {"SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "ALTER ", "DROP "}},
         {"plsql", "mysql", "postgres"}, {"sql"}},
        {{"lua", "--", "", "", false, {"function ", "local function "}}, {}, {"lua"}},
        {{"perl", "#", "", "", false, {"sub ", "package ", "use "}}, {}, {"pl", "pm"}},
        {{"r", "#", "", "", false, {}}, {}, {"r"}},
        {{"dart", "//", "", "", false, {"class ", "void ", "import ", "final "}}, {}, {"dart"}},
        {{"haskell", "--", "", "", true, {"import ", "module ", "data ", "type ", "class ", "instance "}}, {"hs"}, {"hs"}},
        {{"elixir", "#", "", "", false, {"def ", "defp ", "defmodule "}}, {"ex"}, {"ex", "exs"}},
        {{"erlang", "%", "", "", false, {"-module", "-export"}}, {"erl"}, {"erl", "hrl"}},
        {{"clojure", ";;", "", "", false, {"(defn ", "(def ", "(ns "}}, {"clj"}, {"clj", "cljs", "cljc", "edn"}},
        {{"julia", "#", "", "", false, {"function ", "struct ", "module ", "using "}}, {"jl"}, {"jl"}},
        {{"zig", "//", "", "", false, {"fn ", "pub fn ", "const "}}, {}, {"zig"}},
        {{"solidity", "//", "", "", false, {"function ", "contract ", "pragma "}}, {"sol"}, {"sol"}},
        {{"html", "", "<!--", "-->", false, {}}, {"vue", "svelte"}, {"html", "htm", "vue", "svelte"}},
        {{"css", "", "/*", "*/", false, {}}, {"scss", "less", "sass"}, {"css", "scss", "less", "sass"}},
        {{"yaml", "#", "", "", true, {}}, {"yml"}, {"yaml", "yml"}},
        {{"toml", "#", "", "", false, {"["}}, {}, {"toml"}},
        {{"json", "", "", "", false, {}}, {"jsonc"}, {"json", "jsonc"}},
        {{"markdown", "", "<!--", "-->", false, {}}, {"md"}, {"md", "markdown"}},
        {{"dockerfile", "#", "", "", false, {"FROM ", "RUN ", "COPY ", "CMD ", "ENTRYPOINT "}}, {"docker"}, {"dockerfile"}},
        {{"makefile", "#", "", "", false, {}}, {"make"}, {"mk", "make"}},
        {{"terraform", "#", "", "", false, {"resource ", "module ", "variable ", "output ", "provider "}},
         {"hcl", "tf"}, {"tf", "hcl", "tfvars"}},
        {{"protobuf", "//", "", "", false, {"message ", "service ", "enum ", "import "}}, {"proto", "proto3"}, {"proto"}},
        {{"cmake", "#", "", "", false, {}}, {}, {"cmake"}},
    };
    return entries;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::string Language::comment(std::string_view text) const {
    if (!line_comment.empty()) return line_comment + " " + std::string(text);
    if (!block_open.empty()) return block_open + " " + std::string(text) + " " + block_close;
    return std::string(text);
}

const Language& plain_text() {
    static const Language text{"plaintext", "#", "", "", false, {}};
    return text;
}

const Language* language_by_id(std::string_view id) {
    std::string key = lower(id);
    for (const auto& e : table()) {
        if (e.language.id == key) return &e.language;
        if (std::find(e.aliases.begin(), e.aliases.end(), key) != e.aliases.end()) return &e.language;
    }
    return nullptr;
}

const Language& detect_language(std::string_view language_id, std::string_view filepath) {
    if (!language_id.empty())
        if (const Language* l = language_by_id(language_id)) return *l;
    std::string path = lower(filepath);
    auto slash = path.find_last_of("/\\");
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (name == "dockerfile" || name.rfind("dockerfile.", 0) == 0) return *language_by_id("dockerfile");
    if (name == "makefile" || name == "gnumakefile") return *language_by_id("makefile");
    if (name == "cmakelists.txt") return *language_by_id("cmake");
    auto dot = name.find_last_of('.');
    if (dot != std::string::npos) {
        std::string ext = name.substr(dot + 1);
        for (const auto& e : table())
            if (std::find(e.extensions.begin(), e.extensions.end(), ext) != e.extensions.end()) return e.language;
    }
    return plain_text();
}

std::vector<std::string> known_languages() {
    std::vector<std::string> ids;
    for (const auto& e : table()) ids.push_back(e.language.id);
    return ids;
}

}  // namespace codepilot::completion
