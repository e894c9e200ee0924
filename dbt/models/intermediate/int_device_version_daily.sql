{#- One row per ds, model version the device ran ('cloud order': none) and device: its day's business figures.
    rpt_version_daily sums them per version; the canary analysis (edgerec.canary) resamples devices from them.
    GMV is in price levels: the catalog has no prices. -#}

with

events as (

    select
        cast(ds as date) as ds,
        coalesce(model_version, 'cloud order') as model_version,
        device_id,
        session_id,
        event_type,
        item_id,
        case when event_type = 'page_view' and actions.cart then 1 else 0 end as cart,
        case when event_type = 'page_view' and actions.buy then 1 else 0 end as buy

    from {{ source('warehouse', 'events') }}

),

items as (

    select item_id, snapshot_ds, price_level from {{ ref('stg_warehouse__items') }}

),

final as (

    select
        events.ds,
        events.model_version,
        events.device_id,
        count(distinct events.session_id) as sessions,
        cast(sum(case when event_type = 'exposure' then 1 else 0 end) as bigint) as exposures,
        cast(sum(case when event_type = 'click' then 1 else 0 end) as bigint) as clicks,
        cast(sum(case when event_type = 'page_view' then 1 else 0 end) as bigint) as page_views,
        cast(sum(cart) as bigint) as carts,
        cast(sum(buy) as bigint) as purchases,
        cast(sum(buy * coalesce(items.price_level, 0)) as bigint) as gmv_price_levels,
        cast(sum(case when event_type = 'rerank' then 1 else 0 end) as bigint) as reranks

    from events
    left join items on items.item_id = events.item_id and items.snapshot_ds = events.ds
    group by events.ds, events.model_version, events.device_id

)

select * from final
