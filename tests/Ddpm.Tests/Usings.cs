// One temporary-directory helper for every test folder (the web tests link the same file).
global using TempDirectory = Ddpm.Tests.Data.TempDirectory;
