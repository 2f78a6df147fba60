package io.statebackend;

import org.apache.flink.streaming.api.functions.source.legacy.SourceFunction;

/** The tests' sources: Flink 2.3's {@code SourceFunction}, by one name on every line. */
public interface TestSource<T> extends SourceFunction<T> {}
