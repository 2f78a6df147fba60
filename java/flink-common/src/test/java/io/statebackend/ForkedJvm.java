package io.statebackend;

import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

/** The command line of a JVM of its own for a measurement: this JVM's java, classpath, library. */
final class ForkedJvm {
    private ForkedJvm() {}

    /** {@code java jvmOptions… [the opens Flink needs] -cp … main args…}. */
    static List<String> command(List<String> jvmOptions, Class<?> main, String... args) {
        List<String> command = new ArrayList<>();
        command.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        for (String opens :
                new String[] {
                    "java.util", "java.lang", "java.net", "java.io", "java.util.concurrent"
                }) {
            command.add("--add-opens=java.base/" + opens + "=ALL-UNNAMED");
        }
        String nativePath = System.getProperty("statebackend.native.path");
        if (nativePath != null) {
            command.add("-Dstatebackend.native.path=" + nativePath);
        }
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(main.getName());
        command.addAll(List.of(args));
        return command;
    }
}
