package io.statebackend.tools;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.util.MathUtils;

/**
 * Prints reference vectors for Flink's key-group assignment as CSV, computed by calling Flink's own
 * classes. Usage: {@code KeyGroupVectors [output-path]} (stdout if omitted).
 */
public final class KeyGroupVectors {

    private static final long SEED = 20261124L;
    private static final int RANDOM_HASHES = 200;

    private static final int[] HASH_MAX_PARALLELISMS = {1, 2, 7, 128, 1000, 4096, 32768};
    private static final long[] LONG_KEYS = {0L, 1L, -1L, 123456789012L, Long.MAX_VALUE};
    private static final String[] STRING_KEYS = {"", "a", "hello", "flink", "key-42"};
    private static final int[] KEY_MAX_PARALLELISMS = {128, 32768};
    private static final int[] RANGE_MAX_PARALLELISMS = {1, 7, 128, 1000, 32768};
    private static final int[] RANGE_PARALLELISMS = {1, 2, 3, 5, 7, 64, 128};
    private static final int[] OPERATOR_PARALLELISMS = {1, 3, 7};
    private static final int[] DEFAULT_MAX_INPUTS = {1, 2, 50, 64, 85, 86, 100, 1000, 20000, 30000};

    private KeyGroupVectors() {}

    public static void main(String[] args) throws IOException {
        Writer sink =
                args.length > 0
                        ? Files.newBufferedWriter(Path.of(args[0]), StandardCharsets.UTF_8)
                        : new PrintWriter(System.out, false, StandardCharsets.UTF_8);
        try (PrintWriter out = new PrintWriter(sink)) {
            write(out);
            if (out.checkError()) {
                throw new IOException("failed to write vectors");
            }
        }
    }

    private static void write(PrintWriter out) {
        line(
                out,
                "# Flink key-group assignment reference vectors, computed by Apache Flink's own code:"
                        + " flink-runtime "
                        + jarVersion(KeyGroupRangeAssignment.class)
                        + " (KeyGroupRangeAssignment), flink-core "
                        + jarVersion(MathUtils.class)
                        + " (MathUtils).");
        line(out, "# Regenerate with: java/tools/keygroup-vectors/generate.sh");
        line(
                out,
                "# Random hashes: new java.util.Random("
                        + SEED
                        + ").nextInt() x "
                        + RANDOM_HASHES
                        + ".");

        List<Integer> hashes = hashes();

        for (int hash : hashes) {
            line(out, "murmur," + hash + "," + MathUtils.murmurHash(hash));
        }

        for (int hash : hashes) {
            for (int maxParallelism : HASH_MAX_PARALLELISMS) {
                int keyGroup =
                        KeyGroupRangeAssignment.computeKeyGroupForKeyHash(hash, maxParallelism);
                line(out, "keygroup," + hash + "," + maxParallelism + "," + keyGroup);
            }
        }

        for (long key : LONG_KEYS) {
            keyOfKey(out, "long", Long.toString(key), key);
        }
        for (String key : STRING_KEYS) {
            keyOfKey(out, "string", key, key);
        }

        for (int maxParallelism : RANGE_MAX_PARALLELISMS) {
            for (int parallelism : RANGE_PARALLELISMS) {
                if (parallelism > maxParallelism) {
                    continue;
                }
                for (int index = 0; index < parallelism; index++) {
                    KeyGroupRange range =
                            KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(
                                    maxParallelism, parallelism, index);
                    line(
                            out,
                            "range,"
                                    + maxParallelism
                                    + ","
                                    + parallelism
                                    + ","
                                    + index
                                    + ","
                                    + range.getStartKeyGroup()
                                    + ","
                                    + range.getEndKeyGroup());
                }
            }
        }

        operatorIndex(out, 128, 1);
        operatorIndex(out, 1000, 37);

        for (int parallelism : DEFAULT_MAX_INPUTS) {
            line(
                    out,
                    "default_max_parallelism,"
                            + parallelism
                            + ","
                            + KeyGroupRangeAssignment.computeDefaultMaxParallelism(parallelism));
        }
    }

    private static List<Integer> hashes() {
        List<Integer> hashes =
                new ArrayList<>(List.of(0, 1, -1, Integer.MIN_VALUE, Integer.MAX_VALUE, 42));
        Random random = new Random(SEED);
        for (int i = 0; i < RANDOM_HASHES; i++) {
            hashes.add(random.nextInt());
        }
        return hashes;
    }

    private static void keyOfKey(PrintWriter out, String kind, String literal, Object key) {
        for (int maxParallelism : KEY_MAX_PARALLELISMS) {
            line(
                    out,
                    "keygroup_of_key,"
                            + kind
                            + ","
                            + literal
                            + ","
                            + maxParallelism
                            + ","
                            + KeyGroupRangeAssignment.assignToKeyGroup(key, maxParallelism));
        }
    }

    private static void operatorIndex(PrintWriter out, int maxParallelism, int step) {
        for (int parallelism : OPERATOR_PARALLELISMS) {
            for (int keyGroup = 0; keyGroup < maxParallelism; keyGroup += step) {
                line(
                        out,
                        "operator_index,"
                                + maxParallelism
                                + ","
                                + parallelism
                                + ","
                                + keyGroup
                                + ","
                                + KeyGroupRangeAssignment.computeOperatorIndexForKeyGroup(
                                        maxParallelism, parallelism, keyGroup));
            }
        }
    }

    /** Implementation-Version from the manifest of the jar that provided {@code cls}. */
    private static String jarVersion(Class<?> cls) {
        String version = cls.getPackage().getImplementationVersion();
        return version != null ? version : "unknown";
    }

    /** Always '\n', whatever the platform. */
    private static void line(PrintWriter out, String text) {
        out.print(text);
        out.print('\n');
    }
}
