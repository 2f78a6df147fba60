package io.statebackend.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Locale;

/**
 * Loads the native library once per process: from the path in the system property {@value
 * #PATH_PROPERTY} (a development build), or extracted from this jar into a fresh directory only the
 * current user can access and checked against the SHA-256 recorded at build time.
 *
 * <p>Called when a keyed backend is created, never from backend constructors or factories (which
 * also run on the JobManager).
 */
public final class NativeLibrary {
    /** Points at a libstatebackend.so to load instead of the one in the jar. */
    public static final String PATH_PROPERTY = "statebackend.native.path";

    private static final String LIBRARY = "libstatebackend.so";

    /** JVM-wide marker naming the class loader that loaded the library. */
    private static final String LOADED_BY_PROPERTY = "statebackend.native.loaded-by";

    private enum State {
        NOT_LOADED,
        LOADING,
        LOADED
    }

    private static State state = State.NOT_LOADED;
    private static RuntimeException failure;

    private NativeLibrary() {}

    /** Loads the library if this class loader has not; throws if it cannot be loaded. */
    public static synchronized void load() {
        if (state == State.LOADED) {
            return;
        }
        if (failure != null) {
            throw failure;
        }
        if (state == State.LOADING) {
            throw new IllegalStateException("native library load re-entered");
        }
        String loader = loaderName();
        // Claimed atomically: two class loaders loading at the same moment must not both pass.
        Object loadedBy = System.getProperties().putIfAbsent(LOADED_BY_PROPERTY, loader);
        if (loadedBy != null && !loadedBy.equals(loader)) {
            failure = alreadyLoaded("class loader " + loadedBy, null);
            throw failure;
        }
        state = State.LOADING;
        try {
            String override = System.getProperty(PATH_PROPERTY);
            Path path =
                    override != null && !override.isEmpty()
                            ? Paths.get(override).toAbsolutePath()
                            : extract();
            System.load(path.toString());
            state = State.LOADED;
        } catch (UnsatisfiedLinkError e) {
            failure = linkFailure(e);
            release(loader);
            throw failure;
        } catch (IOException | RuntimeException e) {
            failure = new IllegalStateException("cannot load " + LIBRARY + ": " + e, e);
            release(loader);
            throw failure;
        }
    }

    /** Gives up this class loader's claim after a failed load. */
    private static void release(String loader) {
        state = State.NOT_LOADED;
        System.getProperties().remove(LOADED_BY_PROPERTY, loader);
    }

    private static RuntimeException linkFailure(UnsatisfiedLinkError e) {
        String msg = String.valueOf(e.getMessage());
        if (msg.contains("already loaded in another classloader")) {
            return alreadyLoaded("another class loader", e);
        }
        return new IllegalStateException("cannot load " + LIBRARY + ": " + msg, e);
    }

    private static IllegalStateException alreadyLoaded(String by, Throwable cause) {
        return new IllegalStateException(
                LIBRARY
                        + " is already loaded in this JVM by "
                        + by
                        + ". A native library can belong to one class loader only, and Flink"
                        + " gives every job (and every restart of a job) a new user-code class"
                        + " loader: put statebackend-flink-"
                        + FlinkLine.VERSION
                        + ".jar into Flink's lib/ directory"
                        + " instead of the job jar (mark it provided in the job's build), so"
                        + " that all jobs share one copy; or have Flink load it parent-first"
                        + " (classloader.parent-first-patterns.additional: io.statebackend.).",
                cause);
    }

    private static String loaderName() {
        ClassLoader loader = NativeLibrary.class.getClassLoader();
        return loader == null
                ? "bootstrap"
                : loader.getClass().getName()
                        + "@"
                        + Integer.toHexString(System.identityHashCode(loader));
    }

    private static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (os.contains("linux") && (arch.equals("amd64") || arch.equals("x86_64"))) {
            return "linux-x86_64";
        }
        throw new IllegalStateException(
                "no native library for "
                        + os
                        + "/"
                        + arch
                        + " in this jar (set -D"
                        + PATH_PROPERTY
                        + " to a build of the library)");
    }

    /** Copies the library into a new owner-only directory and verifies its checksum. */
    private static Path extract() throws IOException {
        String resource = "/native/" + platform() + "/" + LIBRARY;
        String expected;
        try (InputStream sum = NativeLibrary.class.getResourceAsStream(resource + ".sha256")) {
            if (sum == null) {
                throw new IllegalStateException("the jar has no checksum for " + resource);
            }
            expected = new String(sum.readAllBytes(), StandardCharsets.US_ASCII).trim();
        }
        Path dir =
                Files.createTempDirectory(
                        "statebackend-native-",
                        PosixFilePermissions.asFileAttribute(
                                PosixFilePermissions.fromString("rwx------")));
        Path file = dir.resolve(LIBRARY);
        MessageDigest sha256;
        try {
            sha256 = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("the jar has no " + resource);
            }
            try (DigestInputStream digesting = new DigestInputStream(in, sha256)) {
                Files.copy(digesting, file);
            }
        }
        String actual = HexFormat.of().formatHex(sha256.digest());
        if (!actual.equalsIgnoreCase(expected)) {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
            throw new IllegalStateException(
                    "checksum mismatch for " + resource + ": " + actual + ", expected " + expected);
        }
        // Deleted on exit in the reverse order of registration: the file, then its directory.
        dir.toFile().deleteOnExit();
        file.toFile().deleteOnExit();
        return file;
    }
}
