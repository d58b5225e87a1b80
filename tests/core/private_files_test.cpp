// Private files: created with their mode whatever the umask, never through a planted path.
#include "core/private_files.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace codepilot {
namespace {

class PrivateFiles : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = std::filesystem::temp_directory_path() / ("cp-private-" + std::to_string(::getpid()));
        std::filesystem::remove_all(root_);
        umask_ = ::umask(0); // the most permissive umask: modes must come from the code
    }
    void TearDown() override {
        ::umask(umask_);
        std::filesystem::remove_all(root_);
    }
    std::filesystem::path root_;
    mode_t umask_ = 022;
};

TEST_F(PrivateFiles, DirectoriesAre0700AndFiles0600UnderAnyUmask) {
    auto dir = root_ / "a" / "b";
    ASSERT_TRUE(make_private_dir(dir.string()));
    EXPECT_EQ(permission_bits(root_.string()), 0700u);
    EXPECT_EQ(permission_bits(dir.string()), 0700u);
    ASSERT_TRUE(write_private_file((dir / "key").string(), "secret\n"));
    EXPECT_EQ(permission_bits((dir / "key").string()), 0600u);
    std::string text;
    std::ifstream(dir / "key") >> text;
    EXPECT_EQ(text, "secret");
    ASSERT_TRUE(create_private_file_if_missing((dir / "db").string()));
    EXPECT_EQ(permission_bits((dir / "db").string()), 0600u);
    EXPECT_TRUE(create_private_file_if_missing((dir / "db").string())); // exists: left alone
}

TEST_F(PrivateFiles, AnExistingFileOrALinkIsNeverWrittenThrough) {
    ASSERT_TRUE(make_private_dir(root_.string()));
    auto target = root_ / "elsewhere";
    std::ofstream(target) << "keep";
    std::filesystem::create_symlink(target, root_ / "link");
    EXPECT_FALSE(write_private_file((root_ / "link").string(), "secret"));
    EXPECT_FALSE(write_private_file(target.string(), "secret"));
    std::string text;
    std::ifstream(target) >> text;
    EXPECT_EQ(text, "keep");
}

TEST_F(PrivateFiles, LooserModesAreNamedWithPathAndMode) {
    ASSERT_TRUE(make_private_dir(root_.string()));
    auto file = (root_ / "db").string();
    ASSERT_TRUE(create_private_file_if_missing(file));
    EXPECT_FALSE(looser_mode_warning(file, kPrivateFileMode));
    ASSERT_EQ(::chmod(file.c_str(), 0400), 0);
    EXPECT_FALSE(looser_mode_warning(file, kPrivateFileMode)); // stricter is fine
    ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
    auto warning = looser_mode_warning(file, kPrivateFileMode);
    ASSERT_TRUE(warning);
    EXPECT_EQ(warning->rfind(file + " has mode 0644, looser than 0600", 0), 0u) << *warning;
    EXPECT_NE(warning->find("chmod 600 " + file), std::string::npos) << *warning;
    EXPECT_FALSE(looser_mode_warning((root_ / "absent").string(), kPrivateFileMode));
}

} // namespace
} // namespace codepilot
