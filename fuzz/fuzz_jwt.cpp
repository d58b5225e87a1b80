// OIDC bearer tokens as an attacker sends them: any bytes as a JWS compact token, verified
// against a fixed JWKS (RS256 and ES256 keys; fuzz/make_jwt_seeds.py signed the seeds with
// their private halves, since thrown away). An input may carry a JWKS document after a
// newline: the JWKS parser then reads it and each of its keys checks the token's signature.
// A token the verifier accepts must have the issuer, audience and times it requires.
#include "auth/jwt.h"
#include "fuzz_check.h"

#include <fstream>
#include <unistd.h>

using namespace codepilot;

namespace {

constexpr const char* kJwks =
    R"jwks({"keys": [{"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": "8uiYTPf9xUHenxfaOlwc8aOTy29o9cMDBr2l0WcbM6CmB0R_34csAgwJUTp9CqN71fRZxYVGey8V8cvUiKxUQTfXTNOBa0Fx4OUriPGTugkgIR7Hdio6dBVkgme4DN8BvYCfqb5q1i0yP0vhdHxfVqhRE1mrJohF7LC1Aw7UwEbLwPhfq5wpeVnp30j9-WltGRZHzUG3hh48vfg30ET_yB5miuGtazjVpl5DjbbDJrd5aOdDuqLlGefaSQDV0hTEoba_2DdnH3Er4z8p75UwJIejyWe7zC-jQpvzNzj8jZhwMC5N5e6op8jTA_grd11rhhNZOPxMrf8zkpIkok2KgQ", "e": "AQAB"}, {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": "ynX2IAnwXxA3TI02YRRM1SpXn7q7OHdrNsCe9avHTTU", "y": "JUR9Vwu3i8XstL_FQ2p0l6E5wOkARLOV86WWpOl6wBQ"}]})jwks";
constexpr int64_t kNow = 1'900'000'000; // the seeds' clock

void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_jwt", what);
}

auth::JwtVerifier& verifier() {
    static auth::JwtVerifier* v = [] {
        char path[] = "/tmp/codepilot-fuzz-jwks-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) std::abort();
        ::close(fd);
        std::ofstream(path) << kJwks;
        config::OidcConfig c;
        c.enabled = true;
        c.issuer = "https://idp.example";
        c.audience = "codepilot";
        c.jwks_file = path;
        return new auth::JwtVerifier(c, [] { return kNow; });
    }();
    return *v;
}

bool audience_has(const nlohmann::json& aud, const std::string& wanted) {
    if (aud.is_string()) return aud.get<std::string>() == wanted;
    if (!aud.is_array()) return false;
    for (const auto& a : aud)
        if (a.is_string() && a.get<std::string>() == wanted) return true;
    return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const size_t newline = input.find('\n');
    const std::string token = input.substr(0, newline);

    auto claims = verifier().verify(token);
    if (claims) {
        check(claims->is_object(), "accepted claims are not an object");
        check(claims->value("iss", nlohmann::json()) == "https://idp.example",
              "accepted a token from another issuer");
        check(audience_has(claims->value("aud", nlohmann::json()), "codepilot"),
              "accepted a token for another audience");
        const auto exp = claims->find("exp");
        check(exp != claims->end() && exp->is_number() && exp->get<double>() + 60 >= kNow,
              "accepted an expired token");
    } else {
        check(!claims.error().message.empty(), "a refused token has no reason");
    }

    if (newline != std::string::npos) {
        auto jwks = auth::Jwks::parse(input.substr(newline + 1));
        const size_t dot = token.rfind('.');
        if (jwks && dot != std::string::npos) {
            for (const char* kty : {"RSA", "EC", "OKP", "oct"})
                for (const auto* key : jwks->of_type(kty))
                    for (const char* alg : {"RS256", "ES256", "HS256", "none"})
                        (void)jwks->verify(*key, alg, std::string_view(token).substr(0, dot),
                                           std::string_view(token).substr(dot + 1));
        }
    }
    return 0;
}
