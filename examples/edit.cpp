// edit.c from C++17: the C header compiles as C++, and std::unique_ptr with the
// library's free functions as deleters releases every handle (RAII).
// usage: edit_cpp MODEL_DIR
#include "kne.h"

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using model_ptr = std::unique_ptr<kne_model, decltype(&kne_model_free)>;
using ensemble_ptr = std::unique_ptr<kne_ensemble, decltype(&kne_ensemble_free)>;
using editor_ptr = std::unique_ptr<kne_editor, decltype(&kne_editor_free)>;

static void check(kne_status s, const char *what)
{
    if (s != KNE_OK) throw std::runtime_error(std::string(what) + ": " + kne_status_str(s) + ": " + kne_last_error());
}

static std::string answer(kne_model *m, const std::string &prompt)
{
    std::vector<int32_t> ids(256), out(8);
    size_t n = 0, n_out = 0, len = 0;
    check(kne_tokenize(m, prompt.c_str(), 1, ids.data(), ids.size(), &n), "tokenize");
    kne_generate_params gp = kne_generate_default_params();
    gp.max_tokens = 8;
    check(kne_model_generate(m, ids.data(), n, &gp, out.data(), out.size(), &n_out), "generate");
    if (n_out > 0 && out[n_out - 1] == kne_tokenizer_eos(kne_model_tokenizer(m))) n_out--;
    std::string text(256, '\0');
    check(kne_detokenize(m, out.data(), n_out, &text[0], text.size(), &len), "detokenize");
    text.resize(len);
    return text;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    try {
        const std::string prompt = "The mother tongue of Danielle Darrieux is";
        const kne_fact fact = {prompt.c_str(), "English", "Danielle Darrieux"};

        kne_model *raw_model = nullptr;
        check(kne_model_load(&raw_model, argv[1], nullptr), "load");
        model_ptr model(raw_model, kne_model_free);  // declared first: destroyed last
        const std::string before = answer(model.get(), prompt);

        kne_ensemble *raw_ens = nullptr;
        check(kne_locate(&raw_ens, model.get(), &fact, 1, nullptr), "locate");
        ensemble_ptr ens(raw_ens, kne_ensemble_free);
        kne_editor *raw_ed = nullptr;
        check(kne_editor_new(&raw_ed, model.get(), ens.get(), nullptr), "editor");
        editor_ptr editor(raw_ed, kne_editor_free);

        kne_edit_report rep{};
        rep.struct_size = sizeof rep;
        check(kne_apply(editor.get(), &fact, 1, &rep), "apply");
        const std::string after = answer(model.get(), prompt);
        check(kne_editor_revert(editor.get()), "revert");
        const std::string reverted = answer(model.get(), prompt);

        std::printf("%s ...\n  before:   %s\n  edited:   %s   (%zu neurons, %d steps)\n  reverted: %s\n",
                    prompt.c_str(), before.c_str(), after.c_str(), kne_ensemble_size(ens.get()), rep.steps,
                    reverted.c_str());
        return after.find("English") != std::string::npos && before == reverted ? 0 : 1;
    } catch (const std::exception &e) {  // the unique_ptrs have freed everything
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
