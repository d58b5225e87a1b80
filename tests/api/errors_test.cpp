// What clients read of an error: store and internal details never leave the server.
#include "api/errors.h"
#include "store/database.h"

#include <gtest/gtest.h>

namespace codepilot::api {
namespace {

TEST(PublicError, StoreDetailsBecomeAPlainSentence) {
    auto away = public_error(make_error(ErrorCode::unavailable,
                                        "database unavailable: could not connect to server at 10.2.3.4:5432 (pg-prod)"));
    EXPECT_EQ(away.code, ErrorCode::unavailable);
    EXPECT_EQ(away.message.find("10.2.3.4"), std::string::npos) << away.message;
    EXPECT_NE(away.message.find("store is unavailable"), std::string::npos);
    auto conflict = public_error(make_error(ErrorCode::invalid_argument,
                                            std::string(store::kConstraintError) + "UNIQUE constraint failed: users.email",
                                            "email"));
    EXPECT_EQ(conflict.message.find("users.email"), std::string::npos) << conflict.message;
    EXPECT_EQ(conflict.param, "email");
    auto internal = public_error(make_error(ErrorCode::internal, "sqlite: no such column: u.secret_hash"));
    EXPECT_EQ(internal.message, "internal error");
}

TEST(PublicError, ErrorsMeantForClientsPassUnchanged) {
    auto field = public_error(make_error(ErrorCode::invalid_argument, "'n' must be between 1 and 16", "n"));
    EXPECT_EQ(field.message, "'n' must be between 1 and 16");
    EXPECT_EQ(field.param, "n");
    auto generation = public_error(make_error(ErrorCode::internal, "generation failed: decode error"));
    EXPECT_EQ(generation.message, "generation failed: decode error");
    EXPECT_EQ(status_for(ErrorCode::rate_limited), server::http::status::too_many_requests);
}

}  // namespace
}  // namespace codepilot::api
