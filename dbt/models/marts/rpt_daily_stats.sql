{#- Daily figures of the re-ranking requests: volume, labels, CTR by position, sequence lengths.
    Incremental: each run replaces its own ds, so reruns and backfills are idempotent; the drift checks
    compare a day against the days before it. -#}

{{
    config(
        materialized='incremental',
        unique_key='ds',
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=('ds' if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none)
    )
}}

with

features as (

    select * from {{ ref('stg_warehouse__features') }}
    {% if is_incremental() %}where ds = {{ edgerec.ds_var() }}{% endif %}

),

candidates as (

    select * from {{ ref('int_request_candidates') }}
    {% if is_incremental() %}where ds = {{ edgerec.ds_var() }}{% endif %}

),

requests as (

    select
        ds,
        count(*) as requests,
        cast(sum(case when {{ edgerec.list_sum('mask') }} > 0 then 1 else 0 end) as bigint) as labelled_requests,
        cast(sum(case when trigger_origin = 'derived' then 1 else 0 end) as bigint) as derived_requests,
        avg({{ edgerec.list_length('cand_item_id') }}) as mean_candidates,
        avg({{ edgerec.list_length('ie_item_id') }}) as mean_ie_length,
        avg({{ edgerec.list_length('ipv_item_id') }}) as mean_ipv_length

    from features
    group by ds

),

positions as (

    select
        ds,
        position,
        count(*) as candidates,
        count(label) as labelled,
        cast(sum(label) as bigint) as clicks

    from candidates
    group by ds, position

),

days as (

    select
        ds,
        cast(sum(candidates) as bigint) as candidates,
        cast(sum(labelled) as bigint) as labelled_candidates,
        cast(sum(clicks) as bigint) as clicks,
        {{ edgerec.ordered_list(edgerec.safe_divide('clicks', 'labelled'), 'position') }} as ctr_by_position

    from positions
    group by ds

),

final as (

    select
        requests.ds,
        requests.requests,
        requests.labelled_requests,
        requests.derived_requests,
        days.candidates,
        days.labelled_candidates,
        days.clicks,
        {{ edgerec.safe_divide('days.labelled_candidates', 'days.candidates') }} as labelled_share,
        {{ edgerec.safe_divide('days.clicks', 'days.labelled_candidates') }} as ctr,
        days.ctr_by_position,
        requests.mean_candidates,
        requests.mean_ie_length,
        requests.mean_ipv_length

    from requests
    inner join days on requests.ds = days.ds

)

select * from final
