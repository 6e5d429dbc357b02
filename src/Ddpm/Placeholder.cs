namespace Ddpm; public static class Placeholder {}
